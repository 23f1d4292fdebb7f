//! Expressions from Python: `{"and": [...]}`, `{"or": [...]}`, `{"andnot": [l, r]}` or a leaf
//! name, over a dict of named Bitmaps; read with the GIL held into a tree over shared sets.

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

/// Where an operand sits in the expression, formatted only for an error message
/// (`expr["and"][2]`): a call with nine leaves would otherwise format nine paths it never shows.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Op(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => f.write_str("expr"),
            Path::Op(parent, op) => write!(f, "{parent}[{op:?}]"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct Parser<'py, 'a> {
    leaves: &'a Bound<'py, PyDict>,
    sets: Vec<Arc<RoaringSet>>,
}

fn operands<'py>(v: &Bound<'py, PyAny>, path: &Path<'_>) -> Result<Vec<Bound<'py, PyAny>>> {
    if let Ok(list) = v.cast::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = v.cast::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    Err(EngineError::invalid(format!("{path} must be a list of expressions")))
}

impl Parser<'_, '_> {
    fn parse(&mut self, e: &Bound<'_, PyAny>, path: &Path<'_>) -> Result<Tree> {
        if let Ok(name) = e.cast::<PyString>() {
            // The dict is looked up with the str object itself (its hash is cached); a leaf named
            // twice is simply read twice.
            let item = self
                .leaves
                .get_item(name)
                .map_err(|_| EngineError::invalid(format!("{path}: bad leaf name {:?}", name.to_string())))?
                .ok_or_else(|| EngineError::invalid(format!("{path}: unknown leaf {:?}", name.to_string())))?;
            let bm = item
                .cast::<PyBitmap>()
                .map_err(|_| EngineError::invalid(format!("leaves[{:?}] must be a Bitmap", name.to_string())))?;
            self.sets.push(bm.get().inner.clone());
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
        let k = k
            .cast_into::<PyString>()
            .map_err(|_| EngineError::invalid(format!("{path}: operator must be a string")))?;
        let op = k
            .to_str()
            .map_err(|_| EngineError::invalid(format!("{path}: operator must be a string")))?;
        let here = Path::Op(path, op);
        match op {
            "and" | "or" => {
                let items = operands(&v, &here)?;
                if items.is_empty() {
                    return Err(EngineError::invalid(format!("{here} needs at least one operand")));
                }
                let mut ch = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    ch.push(self.parse(it, &Path::Index(&here, i))?);
                }
                Ok(if op == "and" { Tree::And(ch) } else { Tree::Or(ch) })
            }
            "andnot" => {
                let items = operands(&v, &here)?;
                if items.len() != 2 {
                    return Err(EngineError::invalid(format!(
                        "{here} needs exactly two operands, got {}",
                        items.len()
                    )));
                }
                let l = self.parse(&items[0], &Path::Index(&here, 0))?;
                let r = self.parse(&items[1], &Path::Index(&here, 1))?;
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
        sets: Vec::with_capacity(16),
    };
    let tree = p.parse(expr, &Path::Root)?;
    Ok((tree, p.sets))
}
