//! Parameter schemas and validation. Deny by default: unknown parameters, wrong types, values
//! outside the declared rule, NUL and control bytes, and option-looking strings (leading `-`)
//! are refused with a message that names the parameter and the rule.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Longest string value accepted when a parameter declares no `max_len`.
pub const DEFAULT_MAX_LEN: usize = 256;

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    /// Used when the value is absent (validated like a given value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(flatten)]
    pub kind: ParamKind,
}

/// The type of a parameter and its rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    String {
        /// Regular expression the whole value must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        /// Maximum length in characters (default 256).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_len: Option<usize>,
        /// Allow a value starting with `-` (refused by default so that a value can never be
        /// read as an option by the program).
        #[serde(default, skip_serializing_if = "is_false")]
        allow_leading_dash: bool,
        /// Allow newlines and tabs (other control characters are always refused).
        #[serde(default, skip_serializing_if = "is_false")]
        multiline: bool,
    },
    Integer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    Enum {
        values: Vec<String>,
    },
    Boolean,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A validated value, ready to be rendered into one argv element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl ParamValue {
    /// The text substituted into an argv element.
    pub fn render(&self) -> String {
        match self {
            ParamValue::Str(s) => s.clone(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Bool(b) => b.to_string(),
        }
    }

    /// The JSON form, as passed to the job in `TASKWIRE_PARAMS`.
    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::Str(s) => Value::String(s.clone()),
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::Bool(b) => Value::Bool(*b),
        }
    }
}

/// A value that failed validation: which parameter, and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter '{param}': {rule}")]
pub struct ParamError {
    pub param: String,
    pub rule: String,
}

fn err(param: &str, rule: impl Into<String>) -> ParamError {
    ParamError {
        param: param.chars().take(64).collect(),
        rule: rule.into(),
    }
}

/// Validates `given` against `specs`: every given name must be declared, every required one
/// present, every value of the declared type and within its rule.
pub fn validate_params(
    specs: &[ParamSpec],
    given: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, ParamValue>, ParamError> {
    for name in given.keys() {
        if !specs.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            let known = if known.is_empty() {
                "this command takes no parameters".to_string()
            } else {
                format!("known parameters: {}", known.join(", "))
            };
            return Err(err(
                name,
                format!("is not a parameter of this command ({known})"),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for spec in specs {
        let value = match given.get(&spec.name).filter(|v| !v.is_null()) {
            Some(v) => v,
            None => match &spec.default {
                Some(d) => d,
                None if spec.required => {
                    return Err(err(&spec.name, "is required"));
                }
                None => continue,
            },
        };
        out.insert(spec.name.clone(), validate_one(spec, value)?);
    }
    Ok(out)
}

fn validate_one(spec: &ParamSpec, value: &Value) -> Result<ParamValue, ParamError> {
    let name = spec.name.as_str();
    match &spec.kind {
        ParamKind::String {
            pattern,
            max_len,
            allow_leading_dash,
            multiline,
        } => {
            let s = value
                .as_str()
                .ok_or_else(|| err(name, "must be a string"))?;
            let max = max_len.unwrap_or(DEFAULT_MAX_LEN);
            if s.chars().count() > max {
                return Err(err(name, format!("must be at most {max} characters")));
            }
            if s.contains('\0') {
                return Err(err(name, "must not contain NUL bytes"));
            }
            let bad_control = s
                .chars()
                .any(|c| c.is_control() && !(*multiline && (c == '\n' || c == '\t')));
            if bad_control {
                return Err(err(
                    name,
                    if *multiline {
                        "must not contain control characters other than newline and tab"
                    } else {
                        "must not contain control characters such as newlines"
                    },
                ));
            }
            if s.starts_with('-') && !allow_leading_dash {
                return Err(err(
                    name,
                    "must not start with '-' (it could be read as an option)",
                ));
            }
            if let Some(p) = pattern {
                let re = compile_pattern(p).map_err(|e| err(name, e))?;
                if !re.is_match(s) {
                    return Err(err(name, format!("must match the pattern {p}")));
                }
            }
            Ok(ParamValue::Str(s.to_string()))
        }
        ParamKind::Integer { min, max } => {
            let i = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| err(name, "must be a whole number"))?;
            if let Some(lo) = min
                && i < *lo
            {
                return Err(err(name, format!("must be at least {lo}")));
            }
            if let Some(hi) = max
                && i > *hi
            {
                return Err(err(name, format!("must be at most {hi}")));
            }
            Ok(ParamValue::Int(i))
        }
        ParamKind::Enum { values } => {
            let s = value
                .as_str()
                .ok_or_else(|| err(name, "must be a string"))?;
            if values.iter().any(|v| v == s) {
                Ok(ParamValue::Str(s.to_string()))
            } else {
                Err(err(name, format!("must be one of: {}", values.join(", "))))
            }
        }
        ParamKind::Boolean => match value {
            Value::Bool(b) => Ok(ParamValue::Bool(*b)),
            Value::String(s) if s == "true" => Ok(ParamValue::Bool(true)),
            Value::String(s) if s == "false" => Ok(ParamValue::Bool(false)),
            _ => Err(err(name, "must be true or false")),
        },
    }
}

/// Compiles a declared pattern anchored at both ends, so it must match the whole value.
pub fn compile_pattern(pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("has an invalid pattern in the catalog: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(name: &str, pattern: Option<&str>) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            description: String::new(),
            required: true,
            default: None,
            kind: ParamKind::String {
                pattern: pattern.map(Into::into),
                max_len: None,
                allow_leading_dash: false,
                multiline: false,
            },
        }
    }

    fn given(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn hostile_strings_are_refused_with_the_rule() {
        let specs = [s("name", None)];
        let cases = [
            ("a\nb", "control characters"),
            ("a\0b", "NUL"),
            ("-rf", "start with '-'"),
            ("--help", "start with '-'"),
        ];
        for (value, rule) in cases {
            let e = validate_params(&specs, &given(&[("name", json!(value))])).unwrap_err();
            assert_eq!(e.param, "name");
            assert!(e.rule.contains(rule), "{value:?}: {e}");
        }
        let long = "x".repeat(1 << 20);
        let e = validate_params(&specs, &given(&[("name", json!(long))])).unwrap_err();
        assert!(e.to_string().contains("at most 256 characters"), "{e}");
        // Shell metacharacters are only data: accepted as they are when no pattern forbids.
        let ok =
            validate_params(&specs, &given(&[("name", json!("; rm -rf / $(x) `y`"))])).unwrap();
        assert_eq!(ok["name"].render(), "; rm -rf / $(x) `y`");
    }

    #[test]
    fn pattern_must_match_the_whole_value() {
        let specs = [s("host", Some("[a-z0-9.-]+"))];
        assert!(validate_params(&specs, &given(&[("host", json!("web-1.local"))])).is_ok());
        let e = validate_params(&specs, &given(&[("host", json!("web;reboot"))])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter 'host': must match the pattern [a-z0-9.-]+"
        );
    }

    #[test]
    fn integers_enums_booleans() {
        let specs = [
            ParamSpec {
                name: "days".into(),
                description: String::new(),
                required: true,
                default: None,
                kind: ParamKind::Integer {
                    min: Some(1),
                    max: Some(30),
                },
            },
            ParamSpec {
                name: "mode".into(),
                description: String::new(),
                required: false,
                default: Some(json!("fast")),
                kind: ParamKind::Enum {
                    values: vec!["fast".into(), "full".into()],
                },
            },
            ParamSpec {
                name: "dry".into(),
                description: String::new(),
                required: false,
                default: None,
                kind: ParamKind::Boolean,
            },
        ];
        let v = validate_params(&specs, &given(&[("days", json!("7"))])).unwrap();
        assert_eq!(v["days"], ParamValue::Int(7));
        assert_eq!(v["mode"], ParamValue::Str("fast".into()));
        assert!(!v.contains_key("dry"));
        let e = validate_params(&specs, &given(&[("days", json!(31))])).unwrap_err();
        assert_eq!(e.to_string(), "parameter 'days': must be at most 30");
        let e = validate_params(&specs, &given(&[("days", json!(1.5))])).unwrap_err();
        assert!(e.rule.contains("whole number"));
        let e = validate_params(&specs, &given(&[("days", json!(2)), ("mode", json!("x"))]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter 'mode': must be one of: fast, full"
        );
        let e =
            validate_params(&specs, &given(&[("days", json!(2)), ("dry", json!(1))])).unwrap_err();
        assert!(e.rule.contains("true or false"));
        let e = validate_params(&specs, &given(&[])).unwrap_err();
        assert_eq!(e.to_string(), "parameter 'days': is required");
        let e =
            validate_params(&specs, &given(&[("days", json!(2)), ("evil", json!(1))])).unwrap_err();
        assert!(e.rule.contains("known parameters: days, mode, dry"), "{e}");
    }

    #[test]
    fn param_spec_json_is_pinned() {
        let spec = ParamSpec {
            name: "path".into(),
            description: "Where".into(),
            required: false,
            default: Some(json!("/tmp")),
            kind: ParamKind::String {
                pattern: Some("/[a-z/]+".into()),
                max_len: Some(100),
                allow_leading_dash: false,
                multiline: false,
            },
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v,
            json!({"name": "path", "description": "Where", "required": false, "default": "/tmp",
                   "type": "string", "pattern": "/[a-z/]+", "max_len": 100})
        );
        assert_eq!(serde_json::from_value::<ParamSpec>(v).unwrap(), spec);
    }
}
