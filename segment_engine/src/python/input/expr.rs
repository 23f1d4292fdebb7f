//! Expressions from Python: `{"and": [...]}`, `{"or": [...]}`, `{"andnot": [l, r]}` or a leaf
//! name, over a dict of named Bitmaps; read with the GIL held into a tree over shared sets.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::python::bitmap::PyBitmap;
use crate::error::{EngineError, Result};
use crate::expr::Node;
use crate::set::RoaringSet;

/// A parsed expression whose leaves index into a list of sets.
pub enum Tree {
    Leaf(usize),
    And(Vec<Tree>),
    Or(Vec<Tree>),
    AndNot(Box<Tree>, Box<Tree>),
}

struct Parser<'py, 'a> {
    leaves: &'a Bound<'py, PyDict>,
    sets: Vec<Arc<RoaringSet>>,
    index: HashMap<String, usize>,
}

fn operands<'py>(v: &Bound<'py, PyAny>, path: &str) -> Result<Vec<Bound<'py, PyAny>>> {
    if v.cast::<PyList>().is_err() && v.cast::<PyTuple>().is_err() {
        return Err(EngineError::invalid(format!("{path} must be a list of expressions")));
    }
    let items: Vec<Bound<'py, PyAny>> = v
        .try_iter()
        .map_err(|_| EngineError::invalid(format!("{path} must be a list of expressions")))?
        .collect::<PyResult<_>>()
        .map_err(|_| EngineError::invalid(format!("{path} must be a list of expressions")))?;
    Ok(items)
}

impl Parser<'_, '_> {
    fn parse(&mut self, e: &Bound<'_, PyAny>, path: &str) -> Result<Tree> {
        if let Ok(name) = e.cast::<PyString>() {
            let name = name.to_string();
            if let Some(&i) = self.index.get(&name) {
                return Ok(Tree::Leaf(i));
            }
            let item = self
                .leaves
                .get_item(&name)
                .map_err(|_| EngineError::invalid(format!("{path}: bad leaf name {name:?}")))?
                .ok_or_else(|| EngineError::invalid(format!("{path}: unknown leaf {name:?}")))?;
            let bm = item
                .cast::<PyBitmap>()
                .map_err(|_| EngineError::invalid(format!("leaves[{name:?}] must be a Bitmap")))?;
            self.sets.push(bm.get().inner.clone());
            self.index.insert(name, self.sets.len() - 1);
            return Ok(Tree::Leaf(self.sets.len() - 1));
        }
        let d = e.cast::<PyDict>().map_err(|_| {
            EngineError::invalid(format!(
                "{path} must be a leaf name or a dict with one key 'and', 'or' or 'andnot'"
            ))
        })?;
        if d.len() != 1 {
            return Err(EngineError::invalid(format!(
                "{path} must have exactly one key 'and', 'or' or 'andnot'"
            )));
        }
        let (k, v) = d.iter().next().expect("one item");
        let op: String = k
            .extract()
            .map_err(|_| EngineError::invalid(format!("{path}: operator must be a string")))?;
        let items = operands(&v, &format!("{path}[{op:?}]"))?;
        match op.as_str() {
            "and" | "or" => {
                if items.is_empty() {
                    return Err(EngineError::invalid(format!(
                        "{path}[{op:?}] needs at least one operand"
                    )));
                }
                let mut ch = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    ch.push(self.parse(it, &format!("{path}[{op:?}][{i}]"))?);
                }
                Ok(if op == "and" { Tree::And(ch) } else { Tree::Or(ch) })
            }
            "andnot" => {
                if items.len() != 2 {
                    return Err(EngineError::invalid(format!(
                        "{path}[\"andnot\"] needs exactly two operands, got {}",
                        items.len()
                    )));
                }
                let l = self.parse(&items[0], &format!("{path}[\"andnot\"][0]"))?;
                let r = self.parse(&items[1], &format!("{path}[\"andnot\"][1]"))?;
                Ok(Tree::AndNot(Box::new(l), Box::new(r)))
            }
            other => Err(EngineError::invalid(format!(
                "{path}: unknown operator {other:?} (expected 'and', 'or' or 'andnot')"
            ))),
        }
    }
}

/// The tree as an expression over `sets` (the sets `parse` returned with it).
pub fn to_node<'a>(t: &Tree, sets: &'a [Arc<RoaringSet>]) -> Node<'a> {
    match t {
        Tree::Leaf(i) => Node::Set(&sets[*i]),
        Tree::And(ch) => Node::And(ch.iter().map(|c| to_node(c, sets)).collect()),
        Tree::Or(ch) => Node::Or(ch.iter().map(|c| to_node(c, sets)).collect()),
        Tree::AndNot(l, r) => Node::AndNot(Box::new(to_node(l, sets)), Box::new(to_node(r, sets))),
    }
}

/// Reads `expr` over `leaves`; returns the tree and the sets its leaves index.
pub fn parse(expr: &Bound<'_, PyAny>, leaves: &Bound<'_, PyAny>) -> Result<(Tree, Vec<Arc<RoaringSet>>)> {
    let leaves = leaves
        .cast::<PyDict>()
        .map_err(|_| EngineError::invalid("leaves must be a dict of name -> Bitmap"))?;
    let mut p = Parser {
        leaves,
        sets: Vec::new(),
        index: HashMap::new(),
    };
    let tree = p.parse(expr, "expr")?;
    Ok((tree, p.sets))
}
