//! Static facts about an expression that the collector needs before
//! evaluating it: how far back in time it reads, so the series store keeps
//! enough history and no more.

use promql_parser::parser::{Expr, Offset};

use super::eval::{DEFAULT_LOOKBACK, millis};
use crate::storage::Millis;

/// How far before the evaluation time `expr` may read samples: the longest
/// range plus offset along any path, plus the lookback of the selector at
/// its end. `@` modifiers can read anywhere and are not counted.
pub fn history_needed(expr: &Expr) -> Millis {
    match expr {
        Expr::VectorSelector(selector) => DEFAULT_LOOKBACK + offset(selector.offset.as_ref()),
        Expr::MatrixSelector(matrix) => millis(matrix.range) + offset(matrix.vs.offset.as_ref()),
        Expr::Subquery(subquery) => {
            millis(subquery.range)
                + offset(subquery.offset.as_ref())
                + history_needed(&subquery.expr)
        }
        Expr::Aggregate(aggregate) => {
            let param = aggregate.param.as_deref().map(history_needed).unwrap_or(0);
            history_needed(&aggregate.expr).max(param)
        }
        Expr::Unary(unary) => history_needed(&unary.expr),
        Expr::Binary(binary) => history_needed(&binary.lhs).max(history_needed(&binary.rhs)),
        Expr::Paren(paren) => history_needed(&paren.expr),
        Expr::Call(call) => call
            .args
            .args
            .iter()
            .map(|arg| history_needed(arg))
            .max()
            .unwrap_or(0),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => 0,
    }
}

fn offset(offset: Option<&Offset>) -> Millis {
    match offset {
        Some(Offset::Pos(duration)) => millis(*duration),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::parse_expr;

    #[test]
    fn counts_ranges_offsets_and_subqueries() {
        let needed = |text: &str| history_needed(&parse_expr(text).unwrap());
        assert_eq!(needed("up"), 300_000);
        assert_eq!(needed("rate(x[5m]) / rate(y[1h] offset 1h)"), 7_200_000);
        assert_eq!(needed("max_over_time(rate(x[2m])[10m:1m])"), 720_000);
        assert_eq!(needed("1 + 1"), 0);
    }
}
