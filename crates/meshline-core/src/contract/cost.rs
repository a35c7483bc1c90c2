//! What a rule may cost (sans-io): bounds checked when a rule is compiled, so that one domain's
//! rule cannot burn the CPU that every product's events share.
//!
//! | what | limit |
//! |---|---|
//! | the expression's text | [`MAX_RULE_BYTES`] bytes |
//! | the expression's nodes (after macro expansion) | [`MAX_RULE_NODES`] |
//! | macros (`all`, `exists`, `exists_one`, `map`, `filter`) inside a macro | none: one level |
//! | a `matches` pattern | a string literal, compiled under [`MAX_REGEX_BYTES`] |
//! | elements a macro iterates over in one event | [`MAX_ITERATIONS`], else `rule_error` |
//!
//! With one level of macros, a rule's work is linear in its nodes times the longest list it
//! iterates over, both bounded.

use apache_avro::types::Value;
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

/// The longest rule expression, in bytes.
pub const MAX_RULE_BYTES: usize = 4096;
/// The most nodes a rule's expression may have.
pub const MAX_RULE_NODES: usize = 256;
/// The largest compiled form of a `matches` pattern.
pub const MAX_REGEX_BYTES: usize = 1 << 20;
/// The most elements a rule's macro iterates over in one event.
pub const MAX_ITERATIONS: usize = 10_000;

/// What a compiled rule costs at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cost {
    /// Whether it iterates (holds a macro).
    pub(crate) iterates: bool,
}

/// Checks `text`, a rule's expression, and `expr`, its compiled form, against the limits.
pub(crate) fn check(text: &str, expr: &IdedExpr) -> Result<Cost, String> {
    if text.len() > MAX_RULE_BYTES {
        return Err(format!(
            "the expression is {} bytes; at most {MAX_RULE_BYTES} are allowed",
            text.len()
        ));
    }
    let mut nodes = 0usize;
    let mut cost = Cost::default();
    // (node, inside a macro)
    let mut stack: Vec<(&IdedExpr, bool)> = vec![(expr, false)];
    while let Some((node, in_macro)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_RULE_NODES {
            return Err(format!(
                "the expression has more than {MAX_RULE_NODES} nodes, the limit; split it into several rules"
            ));
        }
        match &node.expr {
            Expr::Comprehension(c) => {
                if in_macro {
                    return Err(
                        "a macro (all, exists, exists_one, map, filter) inside another is not allowed: its cost grows with the square of the data".to_owned(),
                    );
                }
                cost.iterates = true;
                stack.push((&c.iter_range, false));
                stack.push((&c.accu_init, true));
                stack.push((&c.loop_cond, true));
                stack.push((&c.loop_step, true));
                stack.push((&c.result, true));
            }
            Expr::Call(call) => {
                if call.func_name == "matches" {
                    let pattern = call.args.last().map(|a| &a.expr);
                    match pattern {
                        Some(Expr::Literal(LiteralValue::String(pattern))) => {
                            regex_check(pattern)?;
                        }
                        _ => {
                            return Err(
                                "`matches` takes its pattern as a string literal only".to_owned()
                            )
                        }
                    }
                }
                stack.extend(call.target.iter().map(|t| (t.as_ref(), in_macro)));
                stack.extend(call.args.iter().map(|a| (a, in_macro)));
            }
            Expr::List(list) => stack.extend(list.elements.iter().map(|e| (e, in_macro))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        stack.push((&e.key, in_macro));
                        stack.push((&e.value, in_macro));
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        stack.push((&f.value, in_macro));
                    }
                }
            }
            Expr::Select(select) => stack.push((&select.operand, in_macro)),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    Ok(cost)
}

fn regex_check(pattern: &str) -> Result<(), String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_BYTES)
        .build()
        .map(|_| ())
        .map_err(|e| format!("the pattern `{pattern}`: {e}"))
}

/// The most elements of one list or map in `value`, walked without recursion.
pub(crate) fn longest_collection(value: &Value) -> usize {
    let mut longest = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => {
                longest = longest.max(items.len());
                stack.extend(items);
            }
            Value::Map(entries) => {
                longest = longest.max(entries.len());
                stack.extend(entries.values());
            }
            Value::Record(fields) => stack.extend(fields.iter().map(|(_, v)| v)),
            Value::Union(_, inner) => stack.push(inner),
            _ => {}
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(expression: &str) -> Result<Cost, String> {
        let program = cel::Program::compile(expression).map_err(|e| e.to_string())?;
        check(expression, program.expression())
    }

    #[test]
    fn rules_within_the_limits_compile_and_cost_bombs_are_refused() {
        assert_eq!(
            cost("message.ms >= 0 && message.track != ''"),
            Ok(Cost { iterates: false })
        );
        assert_eq!(
            cost("message.tags.all(t, t != '')"),
            Ok(Cost { iterates: true })
        );
        assert!(cost("message.id.matches('^[a-z]+$')").is_ok());
        let long_sum = format!("{}1", "1 + ".repeat(300));
        let long_text = format!("message.id == '{}'", "x".repeat(5000));
        for (bomb, why) in [
            (
                "message.a.all(x, message.a.all(y, x == y))",
                "inside another",
            ),
            (
                "message.a.exists(x, message.a.map(y, y).size() > 0)",
                "inside another",
            ),
            ("message.id.matches(message.pattern)", "string literal"),
            ("message.id.matches('(a{1000}){1000}')", "the pattern"),
            (long_sum.as_str(), "nodes"),
            (long_text.as_str(), "bytes"),
        ] {
            let err = cost(bomb).unwrap_err();
            assert!(err.contains(why), "{}: {err}", &bomb[..bomb.len().min(60)]);
        }
    }

    #[test]
    fn the_longest_collection_is_found_at_any_depth() {
        let value = Value::Record(vec![
            ("a".into(), Value::Array(vec![Value::Int(1); 3])),
            (
                "b".into(),
                Value::Union(1, Box::new(Value::Array(vec![Value::Null; 7]))),
            ),
        ]);
        assert_eq!(longest_collection(&value), 7);
    }
}
