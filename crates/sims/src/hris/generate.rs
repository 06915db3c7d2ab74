//! Synthetic organisations: N employees with departments, titles, locations, cost centers, a
//! management tree, start dates and some terminations and leaves — the same for the same seed.

use std::collections::{BTreeMap, HashSet};

use chrono::{Days, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::operator_hris::{Employee, EmploymentStatus};

const DEPARTMENTS: &[(&str, &str, &[&str])] = &[
    (
        "Engineering",
        "ENG",
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "Staff Engineer",
            "Engineering Manager",
            "Site Reliability Engineer",
        ],
    ),
    (
        "Product",
        "PRD",
        &[
            "Product Manager",
            "Senior Product Manager",
            "Product Designer",
        ],
    ),
    (
        "Sales",
        "SAL",
        &[
            "Account Executive",
            "Sales Engineer",
            "Sales Manager",
            "Sales Development Representative",
        ],
    ),
    (
        "Marketing",
        "MKT",
        &["Marketing Manager", "Content Strategist", "Growth Analyst"],
    ),
    (
        "Customer Support",
        "SUP",
        &[
            "Support Engineer",
            "Support Lead",
            "Customer Success Manager",
        ],
    ),
    (
        "Finance",
        "FIN",
        &["Accountant", "Financial Analyst", "Controller"],
    ),
    (
        "People",
        "PPL",
        &[
            "Recruiter",
            "People Partner",
            "People Operations Specialist",
        ],
    ),
    (
        "Security",
        "SEC",
        &["Security Engineer", "Security Analyst", "Security Manager"],
    ),
    (
        "IT",
        "ITS",
        &[
            "IT Administrator",
            "IT Support Specialist",
            "Systems Engineer",
        ],
    ),
    (
        "Legal",
        "LGL",
        &["Counsel", "Paralegal", "Compliance Manager"],
    ),
];

const LOCATIONS: &[&str] = &[
    "San Francisco",
    "New York",
    "London",
    "Berlin",
    "Toronto",
    "Sydney",
    "Remote",
];

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Katherine",
    "Donald",
    "Hedy",
    "John",
    "Sophie",
    "Niklaus",
    "Shafi",
    "Leslie",
    "Anita",
    "Vint",
    "Joan",
    "Bjarne",
    "Lynn",
    "Guido",
    "Karen",
    "James",
    "Mary",
    "Yukihiro",
];

const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "Knuth",
    "Lamarr",
    "McCarthy",
    "Wilson",
    "Wirth",
    "Goldwasser",
    "Lamport",
    "Borg",
    "Cerf",
    "Clarke",
    "Stroustrup",
    "Conway",
    "van Rossum",
    "Jones",
    "Gosling",
    "Keller",
    "Matsumoto",
];

/// The first employee ID; IDs count up from here as decimal strings, as BambooHR's do.
pub const FIRST_EMPLOYEE_ID: u64 = 1001;

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

/// `count` employees, deterministic for `seed`. Employee 1001 is the CEO; the first person of
/// each department heads it and reports to the CEO; everyone else reports to an earlier member
/// of their department. About 7% are terminated (with a termination date after their start) and
/// 2% on leave. Emails are `first.last@example.com`, made unique with a number. Start dates fall
/// between 2016 and mid-2025, termination dates no later than 2025-12-31.
pub fn generate_employees(count: usize, seed: u64) -> Vec<Employee> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut employees: Vec<Employee> = Vec::with_capacity(count);
    let mut emails = HashSet::new();
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let first_start = date(2016, 1, 1);
    let last_termination = date(2025, 12, 31);
    for index in 0..count {
        let id = (FIRST_EMPLOYEE_ID + index as u64).to_string();
        let first_name = (*pick(&mut rng, FIRST_NAMES)).to_owned();
        let last_name = (*pick(&mut rng, LAST_NAMES)).to_owned();
        let local = format!(
            "{}.{}",
            first_name.to_lowercase(),
            last_name.to_lowercase().replace(' ', "")
        );
        let mut email = format!("{local}@example.com");
        let mut suffix = 2;
        while !emails.insert(email.clone()) {
            email = format!("{local}{suffix}@example.com");
            suffix += 1;
        }
        let (department, code, title, manager) = if index == 0 {
            (
                "Executive",
                "EXE",
                "Chief Executive Officer".to_owned(),
                None,
            )
        } else {
            let (department, code, titles) = *pick(&mut rng, DEPARTMENTS);
            match members.get(department) {
                Some(existing) => {
                    let manager = existing[rng.random_range(0..existing.len())];
                    (
                        department,
                        code,
                        (*pick(&mut rng, titles)).to_owned(),
                        Some(manager),
                    )
                }
                None => (department, code, format!("Head of {department}"), Some(0)),
            }
        };
        members.entry(department).or_default().push(index);
        let start_date = first_start
            .checked_add_days(Days::new(rng.random_range(0..3_460)))
            .unwrap_or(first_start);
        let roll: f64 = rng.random();
        let (status, termination_date) = if index > 0 && roll < 0.07 {
            let span = (last_termination - start_date).num_days().max(1);
            let days = u64::try_from(rng.random_range(1..=span)).unwrap_or(1);
            let ends = start_date
                .checked_add_days(Days::new(days))
                .unwrap_or(last_termination);
            (EmploymentStatus::Terminated, Some(ends))
        } else if index > 0 && roll < 0.09 {
            (EmploymentStatus::OnLeave, None)
        } else {
            (EmploymentStatus::Active, None)
        };
        let employment_type = match rng.random_range(0..20) {
            0 | 1 => "Contractor",
            2 => "Part-Time",
            _ => "Full-Time",
        };
        let level = format!("L{}", rng.random_range(1..=7));
        let manager_id = manager.map(|manager: usize| employees[manager].id.clone());
        let manager_email = manager.map(|manager: usize| employees[manager].email.clone());
        employees.push(Employee {
            id,
            email,
            first_name,
            last_name,
            department: Some(department.to_owned()),
            title: Some(title),
            location: Some((*pick(&mut rng, LOCATIONS)).to_owned()),
            cost_center: Some(format!("CC-{code}-{}", rng.random_range(1..=3))),
            employment_type: Some(employment_type.to_owned()),
            manager_id,
            manager_email,
            status,
            start_date: Some(start_date),
            termination_date,
            custom: BTreeMap::from([("level".to_owned(), level)]),
        });
    }
    employees
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_org_and_a_consistent_tree() {
        let employees = generate_employees(500, 7);
        assert_eq!(employees, generate_employees(500, 7));
        assert_ne!(employees, generate_employees(500, 8));
        let ids: HashSet<_> = employees.iter().map(|e| e.id.as_str()).collect();
        let emails: HashSet<_> = employees.iter().map(|e| e.email.as_str()).collect();
        assert_eq!(ids.len(), 500);
        assert_eq!(emails.len(), 500);
        assert_eq!(employees[0].manager_id, None);
        for employee in &employees[1..] {
            let manager = employee.manager_id.as_deref().expect("manager");
            assert!(manager < employee.id.as_str(), "managers come first");
            assert!(ids.contains(manager));
            if let Some(end) = employee.termination_date {
                assert!(end > employee.start_date.expect("start"));
                assert_eq!(employee.status, EmploymentStatus::Terminated);
            }
        }
        let terminated = employees
            .iter()
            .filter(|e| e.status == EmploymentStatus::Terminated)
            .count();
        assert!((10..70).contains(&terminated), "{terminated} terminated");
        assert!(
            employees
                .iter()
                .any(|e| e.status == EmploymentStatus::OnLeave)
        );
    }
}
