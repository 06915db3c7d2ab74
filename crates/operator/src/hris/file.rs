//! An HR export in CSV or JSON, read from a path or an http(s) URL, with a column mapping.
//!
//! CSV needs a header row; records are named by line. JSON is an array of objects, at the document
//! root or at a JSON pointer (`records: /employees`); records are named by index. Scalars are read
//! as text, `null` as absent, nested objects as `parent.child` columns. Columns named
//! `custom.<name>` fill custom field `<name>` without a mapping, so the operator's own serialized
//! [`Employee`] list (and a CSV with `custom.level` headers) reads back as it was written.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveDate, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};

use super::columns::{ColumnPreset, Columns, employee_from_record, json_record};
use super::config::{FileConfig, FileFormat, InvalidRowPolicy};
use super::error::{HrisError, RowProblem, SourceKind};
use super::http::HttpFetcher;
use super::snapshot::{HrSnapshot, RosterBuilder};
use crate::engine::Employee;
use crate::secret::Secret;

const SYSTEM: SourceKind = SourceKind::File;

/// How to read one export.
#[derive(Debug, Clone)]
struct FileLayout {
    format: FileFormat,
    records: Option<String>,
    delimiter: u8,
    columns: Columns,
}

/// Reads an export from a path or URL.
#[derive(Debug)]
pub struct FileSource {
    location: String,
    http: Option<HttpFetcher>,
    bearer_token: Option<Secret>,
    format: Option<FileFormat>,
    records: Option<String>,
    delimiter: u8,
    columns: Columns,
    policy: InvalidRowPolicy,
    max_bytes: u64,
}

impl FileSource {
    /// Builds the source from configuration, reading the referenced bearer token if any.
    pub fn from_config(config: &FileConfig) -> Result<Self, HrisError> {
        let bearer_token = config
            .bearer_token
            .as_ref()
            .map(|token| token.resolve())
            .transpose()?;
        Self::new(config, bearer_token)
    }

    /// Builds the source with the bearer token at hand (the reference in `config` is not read).
    pub fn new(config: &FileConfig, bearer_token: Option<Secret>) -> Result<Self, HrisError> {
        config.validate("file")?;
        let http = if config.is_url() {
            Some(HttpFetcher::new(
                SYSTEM,
                &config.http,
                bearer_token.iter().cloned().collect(),
            )?)
        } else {
            None
        };
        Ok(Self {
            location: config.location.clone(),
            http,
            bearer_token,
            format: config.format,
            records: config.records.clone(),
            delimiter: config.delimiter.map_or(b',', |c| c as u8),
            columns: Columns::resolve(&config.columns, ColumnPreset::EmployeeFields),
            policy: config.invalid_rows,
            max_bytes: config.http.max_body_bytes,
        })
    }

    /// Every record of the export.
    pub async fn snapshot(&self) -> Result<HrSnapshot, HrisError> {
        let fetched_at = Utc::now();
        let (bytes, content_type) = self.read().await?;
        let layout = self.layout(content_type.as_deref())?;
        let mut roster = RosterBuilder::new(SYSTEM, self.policy);
        for (location, record) in parse_records(&bytes, &layout, fetched_at.date_naive())? {
            roster.push(location, record)?;
        }
        roster.finish(fetched_at)
    }

    /// One employee: the export is read again and searched.
    pub async fn employee(&self, id: &str) -> Result<Option<Employee>, HrisError> {
        let id = id.trim();
        let (bytes, content_type) = self.read().await?;
        let layout = self.layout(content_type.as_deref())?;
        let records = parse_records(&bytes, &layout, Utc::now().date_naive())?;
        let mut found = None;
        for (_, record) in records {
            match record {
                Ok(employee) if employee.id == id => {
                    if found.is_some() {
                        return Err(HrisError::InvalidRow {
                            system: SYSTEM,
                            problem: RowProblem {
                                location: self.location.clone(),
                                employee_id: Some(id.to_owned()),
                                field: None,
                                problem: "duplicate employee ID".into(),
                            },
                        });
                    }
                    found = Some(employee);
                }
                Err(problem) if problem.employee_id.as_deref() == Some(id) => {
                    return Err(HrisError::InvalidRow {
                        system: SYSTEM,
                        problem,
                    });
                }
                _ => {}
            }
        }
        Ok(found)
    }

    fn layout(&self, content_type: Option<&str>) -> Result<FileLayout, HrisError> {
        let format = match self.format {
            Some(format) => format,
            None => infer_format(&self.location, content_type).ok_or_else(|| {
                HrisError::Config(format!(
                    "cannot tell whether {} is CSV or JSON; set hris.format",
                    self.location
                ))
            })?,
        };
        Ok(FileLayout {
            format,
            records: self.records.clone(),
            delimiter: self.delimiter,
            columns: self.columns.clone(),
        })
    }

    /// The raw bytes and, for URLs, the content type.
    async fn read(&self) -> Result<(Vec<u8>, Option<String>), HrisError> {
        let Some(http) = &self.http else {
            let io_error = |err: std::io::Error| HrisError::Io {
                path: self.location.clone(),
                message: err.to_string(),
            };
            let size = tokio::fs::metadata(&self.location)
                .await
                .map_err(io_error)?
                .len();
            if size > self.max_bytes {
                return Err(HrisError::Io {
                    path: self.location.clone(),
                    message: format!(
                        "{size} bytes exceeds the {} byte limit (http.maxBodyBytes)",
                        self.max_bytes
                    ),
                });
            }
            let bytes = tokio::fs::read(&self.location).await.map_err(io_error)?;
            return Ok((bytes, None));
        };
        let fetched = http
            .send("file.get", || {
                let request = http
                    .client()
                    .get(&self.location)
                    .header(ACCEPT, "text/csv, application/json;q=0.9, */*;q=0.5");
                match &self.bearer_token {
                    Some(token) => request.bearer_auth(token.expose()),
                    None => request,
                }
            })
            .await?;
        Ok((fetched.body, content_type(&fetched.headers)))
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.to_ascii_lowercase())
}

/// The format from the location's extension, else from the content type.
fn infer_format(location: &str, content_type: Option<&str>) -> Option<FileFormat> {
    let path = url::Url::parse(location)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .map_or_else(|| location.to_owned(), |url| url.path().to_owned());
    let extension = Path::new(&path)
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => return Some(FileFormat::Csv),
        Some("json") => return Some(FileFormat::Json),
        _ => {}
    }
    let content_type = content_type?;
    if content_type.contains("csv") {
        Some(FileFormat::Csv)
    } else if content_type.contains("json") {
        Some(FileFormat::Json)
    } else {
        None
    }
}

type ParsedRecord = (String, Result<Employee, RowProblem>);

/// Parses a whole export into located records. A file that cannot be read as the format at all
/// is an error; one bad record is returned as that record's problem.
fn parse_records(
    bytes: &[u8],
    layout: &FileLayout,
    today: NaiveDate,
) -> Result<Vec<ParsedRecord>, HrisError> {
    match layout.format {
        FileFormat::Csv => parse_csv(bytes, layout, today),
        FileFormat::Json => parse_json(bytes, layout, today),
    }
}

fn malformed(message: String) -> HrisError {
    HrisError::Malformed {
        system: SYSTEM,
        operation: "file.parse",
        message,
    }
}

fn parse_csv(
    bytes: &[u8],
    layout: &FileLayout,
    today: NaiveDate,
) -> Result<Vec<ParsedRecord>, HrisError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(layout.delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|err| malformed(format!("CSV header row: {err}")))?
        .iter()
        .map(|name| name.trim().to_owned())
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err(malformed("CSV has no header row".into()));
    }
    if !headers.contains(&layout.columns.id) {
        return Err(malformed(format!(
            "CSV header has no {:?} column (the employee ID); columns are {headers:?}",
            layout.columns.id
        )));
    }
    let mut records = Vec::new();
    for result in reader.byte_records() {
        let record = match result {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                if matches!(err.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    let location = format!("line {line}");
                    records.push((
                        location.clone(),
                        Err(RowProblem {
                            location,
                            employee_id: None,
                            field: None,
                            problem: err.to_string(),
                        }),
                    ));
                    continue;
                }
                return Err(malformed(format!("CSV line {line}: {err}")));
            }
        };
        let location = format!("line {}", record.position().map_or(0, csv::Position::line));
        let mut values = BTreeMap::new();
        let mut bad_text = None;
        for (name, field) in headers.iter().zip(record.iter()) {
            match std::str::from_utf8(field) {
                Ok(text) => {
                    values.insert(name.clone(), text.to_owned());
                }
                Err(_) => bad_text = Some(name.clone()),
            }
        }
        let converted = match bad_text {
            Some(column) => Err(RowProblem {
                location: location.clone(),
                employee_id: values
                    .get(&layout.columns.id)
                    .map(|id| id.trim().to_owned()),
                field: Some(column),
                problem: "not valid UTF-8".into(),
            }),
            None => employee_from_record(&values, &layout.columns, &location, today),
        };
        records.push((location, converted));
    }
    Ok(records)
}

fn parse_json(
    bytes: &[u8],
    layout: &FileLayout,
    today: NaiveDate,
) -> Result<Vec<ParsedRecord>, HrisError> {
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| malformed(format!("not JSON: {err}")))?;
    let pointer = layout.records.as_deref().unwrap_or("");
    let items = match document.pointer(pointer) {
        Some(serde_json::Value::Array(items)) => items,
        Some(_) => {
            return Err(malformed(format!(
                "expected an array of records at {:?}",
                if pointer.is_empty() { "/" } else { pointer }
            )));
        }
        None => return Err(malformed(format!("nothing at JSON pointer {pointer:?}"))),
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let location = format!("records[{index}]");
            let converted = match item.as_object() {
                Some(object) => {
                    employee_from_record(&json_record(object), &layout.columns, &location, today)
                }
                None => Err(RowProblem {
                    location: location.clone(),
                    employee_id: None,
                    field: None,
                    problem: "record is not a JSON object".into(),
                }),
            };
            (location, converted)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::collections::BTreeMap;

    use super::*;
    use crate::hris::EmploymentStatus;
    use crate::hris::columns::ColumnMapping;

    fn layout(format: FileFormat, mapping: ColumnMapping) -> FileLayout {
        FileLayout {
            format,
            records: None,
            delimiter: b',',
            columns: Columns::resolve(&mapping, ColumnPreset::EmployeeFields),
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).expect("date")
    }

    #[test]
    fn csv_with_a_custom_mapping_and_bom() {
        let mapping: ColumnMapping = serde_yaml::from_str(
            "id: Employee Number\nemail: Work Email\nfullName: Name\nstatus: State\nterminationDate: Last Day\ndateFormat: '%m/%d/%Y'\ncustom: {badge: Badge}\n",
        )
        .expect("mapping");
        let csv = "\u{feff}Employee Number,Name,Work Email,State,Last Day,Badge\n\
                   1,Ada Lovelace,ada@example.com,Active,,B-1\n\
                   2,Grace Hopper,grace@example.com,Terminated,03/31/2026,\"B-2, temp\"\n";
        let records = parse_records(csv.as_bytes(), &layout(FileFormat::Csv, mapping), today())
            .expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, "line 2");
        let ada = records[0].1.as_ref().expect("ada");
        assert_eq!(ada.first_name, "Ada");
        assert_eq!(ada.custom.get("badge").map(String::as_str), Some("B-1"));
        let grace = records[1].1.as_ref().expect("grace");
        assert_eq!(grace.status, EmploymentStatus::Terminated);
        assert_eq!(grace.termination_date, NaiveDate::from_ymd_opt(2026, 3, 31));
        assert_eq!(grace.last_name, "Hopper");
        assert_eq!(
            grace.custom.get("badge").map(String::as_str),
            Some("B-2, temp")
        );
    }

    #[test]
    fn csv_problems_are_named_by_line() {
        let layout = layout(FileFormat::Csv, ColumnMapping::default());
        let records = parse_records(
            b"id,email\n1,a@x.org\n2\n3,not-an-email\n4,d@x.org\n",
            &layout,
            today(),
        )
        .expect("parse");
        let summary: Vec<_> = records
            .iter()
            .map(|(location, record)| (location.as_str(), record.is_ok()))
            .collect();
        assert_eq!(
            summary,
            [
                ("line 2", true),
                ("line 3", false),
                ("line 4", false),
                ("line 5", true)
            ]
        );
        let problem = records[2].1.as_ref().expect_err("bad email");
        assert_eq!(problem.field.as_deref(), Some("email"));

        let error = parse_records(b"name,email\nx,y@z\n", &layout, today()).expect_err("no id");
        assert!(error.to_string().contains("\"id\" column"), "{error}");
        assert!(parse_records(b"", &layout, today()).is_err());
        let invalid = parse_records(b"id,email\n1,\xff\xfe\n", &layout, today()).expect("parse");
        assert_eq!(
            invalid[0].1.as_ref().expect_err("utf8").field.as_deref(),
            Some("email")
        );
    }

    #[test]
    fn json_at_a_pointer_with_scalars_and_nulls() {
        let mut layout = layout(FileFormat::Json, ColumnMapping::default());
        layout.records = Some("/data/people".into());
        let records = parse_records(
            br#"{"data": {"people": [
                {"id": 1, "email": "a@x.org", "department": null, "startDate": "2024-01-02"},
                "nope",
                {"email": "c@x.org"}
            ]}}"#,
            &layout,
            today(),
        )
        .expect("parse");
        let first = records[0].1.as_ref().expect("first");
        assert_eq!(first.id, "1");
        assert_eq!(first.department, None);
        assert_eq!(records[1].0, "records[1]");
        assert!(records[1].1.is_err());
        assert_eq!(
            records[2].1.as_ref().expect_err("no id").field.as_deref(),
            Some("id")
        );
        for (body, pointer) in [
            (&b"{\"data\": {}}"[..], "/data/people"),
            (b"{\"data\": {\"people\": {}}}", "/data/people"),
            (b"[{\"id\": 1}", ""),
        ] {
            layout.records = Some(pointer.into());
            assert_eq!(
                parse_records(body, &layout, today())
                    .expect_err("malformed")
                    .label(),
                "malformed"
            );
        }
    }

    #[test]
    fn nested_and_custom_prefixed_columns_fill_custom_fields() {
        let mapping = ColumnMapping {
            custom: BTreeMap::from([("site".to_owned(), "office.name".to_owned())]),
            ..ColumnMapping::default()
        };
        let records = parse_records(
            br#"[{"id": "1", "custom": {"level": "L4", "team": null}, "office": {"name": "Berlin"}}]"#,
            &layout(FileFormat::Json, mapping.clone()),
            today(),
        )
        .expect("parse");
        let employee = records[0].1.as_ref().expect("employee");
        assert_eq!(
            employee.custom,
            BTreeMap::from([
                ("level".to_owned(), "L4".to_owned()),
                ("site".to_owned(), "Berlin".to_owned())
            ])
        );
        let records = parse_records(
            b"id,custom.level,custom.\n1,L2,ignored\n",
            &layout(FileFormat::Csv, ColumnMapping::default()),
            today(),
        )
        .expect("parse");
        let employee = records[0].1.as_ref().expect("employee");
        assert_eq!(
            employee.custom,
            BTreeMap::from([("level".to_owned(), "L2".to_owned())])
        );
    }

    #[test]
    fn format_is_inferred_from_extension_then_content_type() {
        assert_eq!(infer_format("/data/hr.CSV", None), Some(FileFormat::Csv));
        assert_eq!(
            infer_format("https://hr.example/export.json?x=1", None),
            Some(FileFormat::Json)
        );
        assert_eq!(
            infer_format("https://hr.example/export", Some("text/csv; charset=utf-8")),
            Some(FileFormat::Csv)
        );
        assert_eq!(
            infer_format("https://hr.example/export", Some("text/plain")),
            None
        );
        assert_eq!(infer_format("/data/hr", None), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            for format in [FileFormat::Csv, FileFormat::Json] {
                let _ = parse_records(&bytes, &layout(format, ColumnMapping::default()), today());
            }
        }

        #[test]
        fn csv_parser_never_panics_on_csv_like_text(
            rows in proptest::collection::vec(
                proptest::collection::vec("[a-z0-9@.\" \\-/]{0,12}", 0..6), 0..8),
        ) {
            let mut text = String::from("id,email,status,startDate,terminationDate,managerId\n");
            for row in rows {
                text.push_str(&row.join(","));
                text.push('\n');
            }
            let _ = parse_records(text.as_bytes(), &layout(FileFormat::Csv, ColumnMapping::default()), today());
        }
    }
}
