//! Judges results against a table of [`crate::targets`]: one [`Verdict`]
//! per target and result it applies to. Both benches use it; what a result
//! offers it is a set of named figures per allocator ([`Figures`]).

use crate::targets::{Against, Col, Figure, Limit, Target, BASELINE, SUBJECT};

/// What the judge reads from one row's or scenario's result.
pub trait Figures {
    /// The row's or scenario's id.
    fn id(&self) -> &'static str;
    /// The allocators that ran, in order.
    fn allocs(&self) -> Vec<&'static str>;
    /// The names of the figures every allocator has here.
    fn columns(&self) -> Vec<String>;
    /// `alloc`'s figure in `column` (one of [`Figures::columns`]).
    fn value(&self, alloc: &str, column: &str) -> Result<f64, String>;
}

/// One target's outcome on one row or scenario.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The row's or scenario's id.
    pub id: &'static str,
    /// The target.
    pub target: &'static Target,
    /// The target in words (its text with the columns filled in).
    pub text: String,
    /// The subject's figure (or why there is none).
    pub subject: Result<f64, String>,
    /// The baseline's figure (or why there is none).
    pub baseline: Result<f64, String>,
    /// The subject's figure over what the target holds it against (the
    /// figure itself against a fixed limit); NaN when either is missing.
    pub ratio: f64,
    /// PASS (true) or FAIL (false); `None`: shown, not judged.
    pub pass: Option<bool>,
}

impl Verdict {
    /// For a [`Limit::Goal`]: whether the figure reached it (`None` for
    /// other targets, or without a ratio).
    pub fn goal_met(&self) -> Option<bool> {
        match self.target.limit {
            Limit::Goal(g) if self.ratio.is_finite() => Some(self.ratio <= g),
            _ => None,
        }
    }

    /// The subject's figure over the baseline's (NaN if either is missing).
    pub fn vs_baseline(&self) -> f64 {
        match (&self.subject, &self.baseline) {
            (Ok(s), Ok(b)) => s / b,
            _ => f64::NAN,
        }
    }
}

/// The column `c` names in `columns`; fills `{first}`/`{last}` in `text`
/// with the part of that column's name the pattern leaves open.
fn resolve<'a>(c: Col, columns: &'a [String], text: &mut String) -> Option<&'a str> {
    let (found, suffix, hole) = match c {
        Col::Named(n) => return columns.iter().map(String::as_str).find(|c| *c == n),
        Col::First(s) => (columns.iter().find(|c| c.ends_with(s)), s, "{first}"),
        Col::Last(s) => (columns.iter().rev().find(|c| c.ends_with(s)), s, "{last}"),
    };
    let name = found?;
    *text = text.replace(hole, &name[..name.len() - suffix.len()]);
    Some(name)
}

/// Judges `target` on `r`; `None` when it does not apply (another row, or a
/// figure `r` does not have).
fn judge_one<R: Figures>(r: &R, target: &'static Target) -> Option<Verdict> {
    if !target.on.covers(r.id()) {
        return None;
    }
    let columns = r.columns();
    let mut text = target.text.to_string();
    let (plus, minus) = match target.figure {
        Figure::Col(c) => (resolve(c, &columns, &mut text)?, None),
        Figure::Diff(a, b) => (
            resolve(a, &columns, &mut text)?,
            Some(resolve(b, &columns, &mut text)?),
        ),
    };
    let figure = |alloc: &str| -> Result<f64, String> {
        let v = r.value(alloc, plus)?;
        match minus {
            Some(m) => Ok(v - r.value(alloc, m)?),
            None => Ok(v),
        }
    };
    let subject = figure(SUBJECT);
    let baseline = figure(BASELINE);
    let lowest = |among: &dyn Fn(&str) -> bool| {
        r.allocs()
            .into_iter()
            .filter(|a| *a != SUBJECT && among(a))
            .filter_map(|a| figure(a).ok().filter(|v| v.is_finite()))
            .min_by(f64::total_cmp)
            .ok_or_else(|| "no peer has a figure".to_string())
    };
    let reference = match target.against {
        Against::Fixed => Ok(1.0),
        Against::Baseline => baseline.clone(),
        Against::BestPeer => lowest(&|_| true),
        Against::Peers(names) => lowest(&|a| names.contains(&a)),
    };
    let ratio = match (&subject, &reference) {
        (Ok(s), Ok(r)) => s / r,
        _ => f64::NAN,
    };
    let pass = match (&subject, target.limit) {
        (Err(_), _) => Some(false),
        (Ok(_), Limit::Info | Limit::Goal(_)) => None,
        (Ok(_), Limit::Ran) => Some(true),
        (Ok(_), Limit::AtMost(_) | Limit::Below(_))
            if reference.is_err() && target.against == Against::Baseline =>
        {
            None
        }
        (Ok(_), Limit::AtMost(l)) => Some(ratio <= l),
        (Ok(_), Limit::Below(l)) => Some(ratio < l),
    };
    Some(Verdict {
        id: r.id(),
        target,
        text,
        subject,
        baseline,
        ratio,
        pass,
    })
}

/// Every target of `targets` on every result it applies to: results in
/// order, and for each the targets in table order.
pub fn judge<R: Figures>(results: &[R], targets: &'static [Target]) -> Vec<Verdict> {
    results
        .iter()
        .flat_map(|r| targets.iter().filter_map(move |t| judge_one(r, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::On;

    /// A result with fixed figures: (alloc, column, value or error).
    struct Fake(Vec<(&'static str, &'static str, Result<f64, String>)>);

    impl Figures for Fake {
        fn id(&self) -> &'static str {
            "X"
        }
        fn allocs(&self) -> Vec<&'static str> {
            let mut v: Vec<&str> = self.0.iter().map(|f| f.0).collect();
            v.dedup();
            v
        }
        fn columns(&self) -> Vec<String> {
            let mut v: Vec<String> = Vec::new();
            for f in &self.0 {
                if !v.iter().any(|c| c == f.1) {
                    v.push(f.1.to_string());
                }
            }
            v
        }
        fn value(&self, alloc: &str, column: &str) -> Result<f64, String> {
            let f = self.0.iter().find(|f| f.0 == alloc && f.1 == column);
            f.map_or_else(|| Err(format!("{alloc} did not run")), |f| f.2.clone())
        }
    }

    const fn target(figure: Figure, against: Against, limit: Limit, text: &'static str) -> Target {
        Target {
            on: On::Ids(&["X"]),
            figure,
            against,
            limit,
            text,
            unit: "",
        }
    }

    const A: Col = Col::Named("a");
    const TARGETS: &[Target] = &[
        target(
            Figure::Col(A),
            Against::Baseline,
            Limit::AtMost(1.5),
            "a <= 1.5x",
        ),
        target(
            Figure::Col(A),
            Against::BestPeer,
            Limit::Below(1.0),
            "a < best",
        ),
        target(
            Figure::Col(A),
            Against::Peers(&["mimalloc"]),
            Limit::AtMost(1.0),
            "a <= mi",
        ),
        target(
            Figure::Diff(Col::Last(" ms"), Col::First(" ms")),
            Against::Fixed,
            Limit::AtMost(5.0),
            "{last} <= {first} + 5",
        ),
        target(Figure::Col(A), Against::Fixed, Limit::Info, "a (info)"),
        target(Figure::Col(A), Against::Fixed, Limit::Ran, "a ran"),
        target(
            Figure::Col(A),
            Against::BestPeer,
            Limit::Goal(1.4),
            "a goal",
        ),
        target(
            Figure::Col(Col::Named("none")),
            Against::Fixed,
            Limit::Ran,
            "absent",
        ),
        Target {
            on: On::AllBut(&["X"]),
            ..target(Figure::Col(A), Against::Fixed, Limit::Ran, "elsewhere")
        },
    ];

    fn fake(strata_a: Result<f64, String>, glibc_a: Result<f64, String>) -> Fake {
        Fake(vec![
            ("strata", "a", strata_a),
            ("strata", "1 ms", Ok(1.0)),
            ("strata", "9 ms", Ok(6.0)),
            ("glibc", "a", glibc_a),
            ("mimalloc", "a", Ok(8.0)),
            ("jemalloc", "a", Ok(4.0)),
        ])
    }

    #[test]
    fn limits_references_and_texts() {
        let v = judge(&[fake(Ok(6.0), Ok(5.0))], TARGETS);
        let texts: Vec<&str> = v.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "a <= 1.5x",
                "a < best",
                "a <= mi",
                "9 <= 1 + 5",
                "a (info)",
                "a ran",
                "a goal"
            ]
        );
        let pass: Vec<Option<bool>> = v.iter().map(|v| v.pass).collect();
        let want = [
            Some(true),
            Some(false),
            Some(true),
            Some(true),
            None,
            Some(true),
            None,
        ];
        assert_eq!(pass, want);
        assert_eq!((v[6].goal_met(), v[1].goal_met()), (Some(false), None));
        assert_eq!(v[1].ratio, 1.5, "against jemalloc, the lowest peer");
        assert_eq!(v[2].ratio, 0.75);
        assert_eq!(v[3].ratio, 5.0);
        assert_eq!(v[0].vs_baseline(), 1.2);
    }

    #[test]
    fn missing_figures() {
        // No subject figure: every target fails, info ones too.
        let v = judge(&[fake(Err("crashed".into()), Ok(5.0))], TARGETS);
        assert_eq!(v[0].pass, Some(false));
        assert_eq!(v[4].pass, Some(false));
        assert!(v[0].ratio.is_nan() && v[0].vs_baseline().is_nan());
        // No baseline figure: what is against it is not judged.
        let v = judge(&[fake(Ok(6.0), Err("crashed".into()))], TARGETS);
        assert_eq!(v[0].pass, None);
        assert_eq!(v[1].pass, Some(false));
        // No peer figure: a target against peers fails.
        let alone = Fake(vec![("strata", "a", Ok(1.0))]);
        let v = judge(&[alone], TARGETS);
        assert_eq!(
            (v[0].pass, v[1].pass, v[2].pass),
            (None, Some(false), Some(false))
        );
    }
}
