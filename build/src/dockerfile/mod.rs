//! The Dockerfile front end: text → directives and stages of typed instructions, each
//! with the lines it came from. Variable substitution is per build step
//! (`expand::expand`), because its values come from build arguments and earlier ENVs.

pub mod expand;
pub mod flags;
pub mod instructions;
pub mod lines;
pub mod mounts;
pub mod shell;

pub use instructions::{
    ArgDecl, CommandForm, Copy, From, Healthcheck, Instruction, NetworkMode, Run,
};
pub use lines::{Directives, Heredoc};
pub use mounts::{MountType, RunMount, Sharing};

/// An instruction and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based first line.
    pub line: usize,
    /// 1-based last line (continuations and heredocs included).
    pub end_line: usize,
    /// The instruction as written, continuations joined (what `Step N/M :` shows).
    pub text: String,
    pub instruction: Instruction,
}

/// A build stage: its FROM and the steps after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub from: Step,
    pub steps: Vec<Step>,
}

impl Stage {
    pub fn from(&self) -> &From {
        match &self.from.instruction {
            Instruction::From(f) => f,
            _ => unreachable!("a stage starts with FROM by construction"),
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.from().name.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The file's name as the user knows it (for errors).
    pub file: String,
    pub directives: Directives,
    /// The ARGs before the first FROM.
    pub meta_args: Vec<Step>,
    pub stages: Vec<Stage>,
}

/// A Dockerfile that cannot be parsed: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("failed to parse {file}: dockerfile parse error line {line}: {message}")]
    At {
        file: String,
        line: usize,
        message: String,
    },
    #[error("the Dockerfile ({file}) cannot be empty")]
    Empty { file: String },
    #[error("{file}: dockerfile contains no stages to build")]
    NoStages { file: String },
    #[error("failed to reach build target {target} in Dockerfile")]
    NoTarget { target: String },
}

impl ParseError {
    /// The 1-based line the error is about, if one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::At { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Parses a Dockerfile's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let at = |line: usize, message: String| ParseError::At {
        file: file.to_string(),
        line,
        message,
    };
    let (directives, logical) = lines::split(text).map_err(|e| at(e.line, e.message))?;
    if logical.is_empty() {
        return Err(ParseError::Empty {
            file: file.to_string(),
        });
    }
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let instruction = instructions::parse(&l.text, &l.heredocs, directives.escape)
            .map_err(|m| at(l.start, m))?;
        let step = Step {
            line: l.start,
            end_line: l.end,
            text: l.text,
            instruction,
        };
        match (&step.instruction, stages.last_mut()) {
            (Instruction::From(f), _) => {
                if let Some(name) = &f.name {
                    if stages.iter().any(|s| s.name() == Some(name)) {
                        return Err(at(step.line, format!("duplicate stage name {name:?}")));
                    }
                }
                stages.push(Stage {
                    from: step,
                    steps: Vec::new(),
                })
            }
            (Instruction::Arg(_), None) => meta_args.push(step),
            (_, None) => {
                return Err(at(
                    step.line,
                    "no build stage in current context".to_string(),
                ))
            }
            (_, Some(stage)) => stage.steps.push(step),
        }
    }
    if stages.is_empty() {
        return Err(ParseError::NoStages {
            file: file.to_string(),
        });
    }
    Ok(Dockerfile {
        file: file.to_string(),
        directives,
        meta_args,
        stages,
    })
}

impl Dockerfile {
    /// The index of the stage a build with `--target` ends at (the last without one).
    pub fn target(&self, target: Option<&str>) -> Result<usize, ParseError> {
        match target {
            None | Some("") => Ok(self.stages.len() - 1),
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                self.stages
                    .iter()
                    .position(|s| s.name() == Some(lower.as_str()))
                    .ok_or_else(|| ParseError::NoTarget {
                        target: t.to_string(),
                    })
            }
        }
    }

    /// The number of steps a build of stages `..=last` runs (what `Step N/M` counts:
    /// the ARGs before the first FROM, then every FROM and instruction, as Docker's
    /// classic builder counts them).
    pub fn step_count(&self, last: usize) -> usize {
        self.meta_args.len()
            + self
                .stages
                .iter()
                .take(last + 1)
                .map(|s| 1 + s.steps.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
