//! The image builder: the Dockerfile front end (`dockerfile`: parser directives, logical
//! lines, heredocs, typed instructions with their source lines, and Docker's variable
//! substitution) and the `.dockerignore` matcher (`dockerignore`). Nothing here knows the
//! engine; the executor (`executor`) builds a parsed file on berth's engine.

pub mod dockerfile;
pub mod dockerignore;
#[cfg(feature = "executor")]
pub mod executor;
