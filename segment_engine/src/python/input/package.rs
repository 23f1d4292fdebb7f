//! Crowd packages from Python dicts: every key and value is checked here, with the GIL held, and
//! a bad one is a ValueError naming its path in the package (`groups[1].all[0].value`).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::error::{EngineError, Result};
use crate::orders::{Metric, MetricCond, Window};
use crate::package::{Cond, Group, GroupOp, Package};
use crate::pred::{Bound as End, Interval, Pred};

fn bad(path: &str, msg: impl std::fmt::Display) -> EngineError {
    EngineError::invalid(format!("{path}: {msg}"))
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn as_dict<'a, 'py>(v: &'a Bound<'py, PyAny>, path: &str) -> Result<&'a Bound<'py, PyDict>> {
    v.cast::<PyDict>()
        .map_err(|_| bad(path, format!("must be a dict, got {}", type_name(v))))
}

fn as_list<'py>(v: &Bound<'py, PyAny>, path: &str) -> Result<Vec<Bound<'py, PyAny>>> {
    if v.cast::<PyList>().is_err() && v.cast::<PyTuple>().is_err() {
        return Err(bad(path, format!("must be a list, got {}", type_name(v))));
    }
    v.try_iter()
        .and_then(|it| it.collect::<PyResult<Vec<_>>>())
        .map_err(|_| bad(path, "must be a list"))
}

fn get<'py>(d: &Bound<'py, PyDict>, key: &str, path: &str) -> Result<Bound<'py, PyAny>> {
    d.get_item(key)
        .ok()
        .flatten()
        .ok_or_else(|| bad(path, format!("missing {key:?}")))
}

fn get_str(d: &Bound<'_, PyDict>, key: &str, path: &str) -> Result<String> {
    let v = get(d, key, path)?;
    v.cast::<PyString>().map(|s| s.to_string()).map_err(|_| {
        bad(
            &format!("{path}.{key}"),
            format!("must be a string, got {}", type_name(&v)),
        )
    })
}

fn check_keys(d: &Bound<'_, PyDict>, allowed: &[&str], path: &str) -> Result<()> {
    for k in d.keys() {
        let name: String = k.extract().map_err(|_| bad(path, "keys must be strings"))?;
        if !allowed.contains(&name.as_str()) {
            return Err(bad(path, format!("unknown key {name:?} (expected one of {allowed:?})")));
        }
    }
    Ok(())
}

/// An int (or bool) that fits in i64.
fn int_value(v: &Bound<'_, PyAny>, path: &str) -> Result<i64> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(b.is_true() as i64);
    }
    if v.cast::<PyInt>().is_err() {
        return Err(bad(path, format!("value must be an int or bool, got {}", type_name(v))));
    }
    v.extract::<i64>().map_err(|_| bad(path, "value does not fit in int64"))
}

fn day_value(v: &Bound<'_, PyAny>, path: &str) -> Result<i32> {
    let d = int_value(v, path)?;
    i32::try_from(d).map_err(|_| bad(path, format!("day {d} does not fit in int32")))
}

/// Parses `op` and `value` into a predicate.
fn parse_pred(op: &str, value: Option<Bound<'_, PyAny>>, path: &str) -> Result<Pred> {
    let vpath = format!("{path}.value");
    let value = value.ok_or_else(|| bad(path, "missing \"value\""))?;
    let scalar = |v: &Bound<'_, PyAny>| -> Result<i64> {
        if v.cast::<PyList>().is_ok() || v.cast::<PyTuple>().is_ok() {
            return Err(bad(&vpath, format!("op {op:?} takes a single int or bool, got a list")));
        }
        int_value(v, &vpath)
    };
    let list = |v: &Bound<'_, PyAny>| -> Result<Vec<i64>> {
        let items =
            as_list(v, &vpath).map_err(|_| bad(&vpath, format!("op {op:?} takes a list, got {}", type_name(v))))?;
        items
            .iter()
            .enumerate()
            .map(|(i, it)| int_value(it, &format!("{vpath}[{i}]")))
            .collect()
    };
    Ok(match op {
        "eq" => Pred::AnyOf(vec![Interval::point(scalar(&value)?)]),
        "ne" => Pred::NoneOf(vec![Interval::point(scalar(&value)?)]),
        "gte" => Pred::AnyOf(vec![Interval {
            lo: End::Incl(scalar(&value)?),
            hi: End::Unbounded,
        }]),
        "gt" => Pred::AnyOf(vec![Interval {
            lo: End::Excl(scalar(&value)?),
            hi: End::Unbounded,
        }]),
        "lte" => Pred::AnyOf(vec![Interval {
            lo: End::Unbounded,
            hi: End::Incl(scalar(&value)?),
        }]),
        "lt" => Pred::AnyOf(vec![Interval {
            lo: End::Unbounded,
            hi: End::Excl(scalar(&value)?),
        }]),
        "in" => Pred::AnyOf(list(&value)?.into_iter().map(Interval::point).collect()),
        "not_in" => Pred::NoneOf(list(&value)?.into_iter().map(Interval::point).collect()),
        "between" => {
            let v = list(&value)?;
            if v.len() != 2 {
                return Err(bad(
                    &vpath,
                    format!("between takes [low, high], got {} values", v.len()),
                ));
            }
            if v[0] > v[1] {
                return Err(bad(&vpath, format!("between has low {} > high {}", v[0], v[1])));
            }
            Pred::AnyOf(vec![Interval {
                lo: End::Incl(v[0]),
                hi: End::Incl(v[1]),
            }])
        }
        other => {
            return Err(bad(
                &format!("{path}.op"),
                format!("unknown op {other:?} (expected eq, ne, in, not_in, between, gte, lte, gt or lt)"),
            ))
        }
    })
}

fn parse_window(v: &Bound<'_, PyAny>, path: &str) -> Result<Window> {
    let d = as_dict(v, path)?;
    check_keys(d, &["stores", "from_day", "to_day"], path)?;
    let stores = match d.get_item("stores").ok().flatten() {
        None => None,
        Some(s) if s.is_none() => None,
        Some(s) => {
            let spath = format!("{path}.stores");
            let items = as_list(&s, &spath)?;
            let mut ids = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                let v = int_value(it, &format!("{spath}[{i}]"))?;
                ids.push(
                    u32::try_from(v)
                        .map_err(|_| bad(&format!("{spath}[{i}]"), format!("store id {v} is outside 0..2^32-1")))?,
                );
            }
            ids.sort_unstable();
            ids.dedup();
            Some(ids)
        }
    };
    let from_day = day_value(&get(d, "from_day", path)?, &format!("{path}.from_day"))?;
    let to_day = day_value(&get(d, "to_day", path)?, &format!("{path}.to_day"))?;
    if from_day > to_day {
        return Err(bad(path, format!("from_day {from_day} > to_day {to_day}")));
    }
    Ok(Window {
        stores,
        from_day,
        to_day,
    })
}

fn parse_cond(v: &Bound<'_, PyAny>, path: &str) -> Result<Cond> {
    let d = as_dict(v, path)?;
    if d.contains("field").unwrap_or(false) {
        check_keys(d, &["field", "op", "value"], path)?;
        let field = get_str(d, "field", path)?;
        let op = get_str(d, "op", path)?;
        let pred = parse_pred(&op, d.get_item("value").ok().flatten(), path)?;
        Ok(Cond::Field {
            path: path.to_string(),
            field,
            pred,
        })
    } else if d.contains("bitmap").unwrap_or(false) {
        check_keys(d, &["bitmap"], path)?;
        Ok(Cond::Bitmap {
            path: path.to_string(),
            name: get_str(d, "bitmap", path)?,
            negate: false,
        })
    } else if d.contains("not_bitmap").unwrap_or(false) {
        check_keys(d, &["not_bitmap"], path)?;
        Ok(Cond::Bitmap {
            path: path.to_string(),
            name: get_str(d, "not_bitmap", path)?,
            negate: true,
        })
    } else if d.contains("orders").unwrap_or(false) {
        check_keys(d, &["orders", "metric", "op", "value"], path)?;
        let window = parse_window(&get(d, "orders", path)?, &format!("{path}.orders"))?;
        let metric_name = get_str(d, "metric", path)?;
        let metric = Metric::parse(&metric_name).ok_or_else(|| {
            bad(
                &format!("{path}.metric"),
                format!("unknown metric {metric_name:?} (expected count, sum, max, avg, distinct_stores, first_day or last_day)"),
            )
        })?;
        let op = get_str(d, "op", path)?;
        let pred = parse_pred(&op, d.get_item("value").ok().flatten(), path)?;
        Ok(Cond::Orders {
            window,
            cond: MetricCond { metric, pred },
        })
    } else {
        Err(bad(
            path,
            "a condition needs one of \"field\", \"bitmap\", \"not_bitmap\" or \"orders\"",
        ))
    }
}

/// Parses and checks the structure of a package (names are checked when planning).
pub fn parse(v: &Bound<'_, PyAny>) -> Result<Package> {
    let d = as_dict(v, "package")?;
    check_keys(d, &["groups"], "package")?;
    let groups_v = get(d, "groups", "package")?;
    let items = as_list(&groups_v, "package.groups")?;
    if items.is_empty() {
        return Err(bad("package.groups", "needs at least one group"));
    }
    let mut groups = Vec::with_capacity(items.len());
    for (gi, g) in items.iter().enumerate() {
        let path = format!("groups[{gi}]");
        let gd = as_dict(g, &path)?;
        check_keys(gd, &["op", "all"], &path)?;
        let op_name = get_str(gd, "op", &path)?;
        let op = match op_name.as_str() {
            "include" => GroupOp::Include,
            "or" => GroupOp::Or,
            "exclude" => GroupOp::Exclude,
            other => {
                return Err(bad(
                    &format!("{path}.op"),
                    format!("unknown group op {other:?} (expected include, or or exclude)"),
                ))
            }
        };
        if gi == 0 && op != GroupOp::Include {
            return Err(bad(
                &format!("{path}.op"),
                format!("the first group's op must be \"include\", got {op_name:?}"),
            ));
        }
        let conds_v = get(gd, "all", &path)?;
        let conds = as_list(&conds_v, &format!("{path}.all"))?;
        if conds.is_empty() {
            return Err(bad(&format!("{path}.all"), "a group needs at least one condition"));
        }
        let all = conds
            .iter()
            .enumerate()
            .map(|(ci, c)| parse_cond(c, &format!("{path}.all[{ci}]")))
            .collect::<Result<Vec<_>>>()?;
        groups.push(Group { op, all });
    }
    Ok(Package { groups })
}
