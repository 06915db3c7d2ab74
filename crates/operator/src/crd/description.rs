//! Field descriptions as `kubectl explain` should show them. The schema generator copies doc
//! comments line by line, so every wrap at the source's line width would become a hard line
//! break; here the lines of a paragraph are joined, while blank lines (paragraph breaks) and
//! list items keep their own lines.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// Reflows every description in the schema, at every depth.
pub(super) fn reflow_schema(schema: &mut JSONSchemaProps) {
    if let Some(description) = schema.description.as_mut() {
        *description = reflow(description);
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|properties| properties.values_mut())
        .chain(
            [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
                .into_iter()
                .flatten()
                .flatten(),
        )
        .chain(schema.not.as_deref_mut());
    let mut nested: Vec<&mut JSONSchemaProps> = children.collect();
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        nested.push(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(additional)) = schema.additional_properties.as_mut() {
        nested.push(additional);
    }
    for child in nested {
        reflow_schema(child);
    }
}

/// Joins the lines of each paragraph with single spaces. A blank line separates paragraphs; a
/// line that starts a list item (`- `, `* `, `1. `) starts a new line.
pub(super) fn reflow(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_paragraph_start = true;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !out.is_empty() && !at_paragraph_start {
                out.push_str("\n\n");
            }
            at_paragraph_start = true;
            continue;
        }
        if !at_paragraph_start {
            out.push(if starts_list_item(line) { '\n' } else { ' ' });
        }
        out.push_str(line);
        at_paragraph_start = false;
    }
    if out.ends_with("\n\n") {
        out.truncate(out.len() - 2);
    }
    out
}

fn starts_list_item(line: &str) -> bool {
    if line.starts_with("- ") || line.starts_with("* ") {
        return true;
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(". ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_join_and_paragraphs_stay_apart() {
        let text = "Grants Opal groups to every active employee\nthe selector matches.\n\n\
                    Desired access is the union\nover all mappings.";
        assert_eq!(
            reflow(text),
            "Grants Opal groups to every active employee the selector matches.\n\n\
             Desired access is the union over all mappings."
        );
    }

    #[test]
    fn list_items_keep_their_lines_and_wrapped_items_join() {
        let text =
            "Modes:\n- `Enforce` changes\n  Opal;\n- `Observe` reports.\n1. first\n2. second";
        assert_eq!(
            reflow(text),
            "Modes:\n- `Enforce` changes Opal;\n- `Observe` reports.\n1. first\n2. second"
        );
    }

    #[test]
    fn single_lines_and_extra_blank_lines_are_tidied() {
        assert_eq!(reflow("One line."), "One line.");
        assert_eq!(reflow("\n\nA\n\n\n\nB\n\n"), "A\n\nB");
        assert_eq!(reflow("2026 was a year.\nNext"), "2026 was a year. Next");
    }

    #[test]
    fn every_description_in_a_nested_schema_is_reflowed() {
        let leaf = JSONSchemaProps {
            description: Some("a\nb".to_owned()),
            ..JSONSchemaProps::default()
        };
        let mut schema = JSONSchemaProps {
            description: Some("top\nlevel".to_owned()),
            properties: Some([("field".to_owned(), leaf.clone())].into()),
            items: Some(JSONSchemaPropsOrArray::Schema(Box::new(leaf.clone()))),
            one_of: Some(vec![leaf]),
            ..JSONSchemaProps::default()
        };
        reflow_schema(&mut schema);
        assert_eq!(schema.description.as_deref(), Some("top level"));
        let field = &schema.properties.as_ref().expect("properties")["field"];
        assert_eq!(field.description.as_deref(), Some("a b"));
        let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items else {
            panic!("items");
        };
        assert_eq!(items.description.as_deref(), Some("a b"));
        assert_eq!(
            schema.one_of.as_ref().expect("oneOf")[0]
                .description
                .as_deref(),
            Some("a b")
        );
    }
}
