//! The money of a promotion: integer cents only. A percent is rounded half-up once per order
//! (never per line); an amount is capped at what it applies to; the discount is then shared
//! among the eligible lines in proportion to their totals by the largest-remainder method, so
//! the shares sum exactly to the discount and no share exceeds its line's total.

/// `percent`: `value` percent (1-100) of the eligible lines, rounded half-up once per order.
/// `amount`: `value` cents off the eligible lines, at most their total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = PromotionKind, rename_all = "snake_case")]
pub enum Kind {
    /// 1–100 percent of the eligible subtotal.
    Percent,
    /// A fixed number of cents, at most the eligible subtotal.
    Amount,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "percent" => Some(Kind::Percent),
            "amount" => Some(Kind::Amount),
            _ => None,
        }
    }
}

/// The order's discount and each line's share of it (0 for lines it does not apply to).
/// `lines` are `(line_total_cents, eligible)`; totals are never negative.
pub fn allocate(kind: Kind, value: i64, lines: &[(i64, bool)]) -> (i64, Vec<i64>) {
    let eligible: i128 = lines
        .iter()
        .filter(|(_, e)| *e)
        .map(|(t, _)| i128::from((*t).max(0)))
        .sum();
    if eligible == 0 {
        return (0, vec![0; lines.len()]);
    }
    let discount: i128 = match kind {
        // Half-up: add half the divisor before the (flooring, all non-negative) division.
        Kind::Percent => (eligible * i128::from(value.clamp(0, 100)) + 50) / 100,
        Kind::Amount => i128::from(value.max(0)).min(eligible),
    };
    let mut shares: Vec<i128> = Vec::with_capacity(lines.len());
    let mut remainders: Vec<(i128, usize)> = Vec::new();
    for (i, (total, is_eligible)) in lines.iter().enumerate() {
        if !is_eligible {
            shares.push(0);
            continue;
        }
        let exact = discount * i128::from((*total).max(0));
        shares.push(exact / eligible);
        remainders.push((exact % eligible, i));
    }
    // The cents the floors left over go to the largest remainders (ties: the earlier line).
    // A line with remainder 0 never gets one, so a share never exceeds its line's total.
    let left = discount - shares.iter().sum::<i128>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.into_iter().take(left as usize) {
        shares[i] += 1;
    }
    // Bounded by the eligible subtotal, itself a sum of i64 totals kept in range by callers.
    let to_i64 = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    (to_i64(discount), shares.into_iter().map(to_i64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(lines: &[(i64, bool)], discount: i64, shares: &[i64]) {
        assert_eq!(shares.iter().sum::<i64>(), discount, "shares sum exactly");
        for ((total, eligible), share) in lines.iter().zip(shares) {
            assert!(*share >= 0 && share <= total, "share {share} of {total}");
            if !eligible {
                assert_eq!(*share, 0);
            }
        }
    }

    #[test]
    fn thirty_three_percent_of_three_odd_lines() {
        // 1999 + 2 * 333 + 3 * 101 = 2968; 33 % = 979.44 -> 979.
        let lines = [(1999, true), (666, true), (303, true)];
        let (discount, shares) = allocate(Kind::Percent, 33, &lines);
        assert_eq!(discount, 979);
        // Exact shares 659.35, 219.68, 99.94: the floors (659, 219, 99) leave 2 cents, which go
        // to the two largest remainders (the last two lines).
        assert_eq!(shares, vec![659, 220, 100]);
        check(&lines, discount, &shares);
    }

    #[test]
    fn percent_rounds_half_up_once_per_order() {
        // 50 % of 101 = 50.5 -> 51, even though each line alone would round differently.
        let lines = [(1, true), (100, true)];
        let (discount, shares) = allocate(Kind::Percent, 50, &lines);
        assert_eq!(discount, 51);
        check(&lines, discount, &shares);
        // 33 % of 150 = 49.5 -> 50.
        assert_eq!(allocate(Kind::Percent, 33, &[(150, true)]).0, 50);
        // 33 % of 149 = 49.17 -> 49.
        assert_eq!(allocate(Kind::Percent, 33, &[(149, true)]).0, 49);
    }

    #[test]
    fn an_amount_larger_than_the_subtotal_is_capped_at_it() {
        let lines = [(500, true), (250, true)];
        let (discount, shares) = allocate(Kind::Amount, 10_000, &lines);
        assert_eq!(discount, 750);
        assert_eq!(
            shares,
            vec![500, 250],
            "every line down to zero, none below"
        );
        check(&lines, discount, &shares);
    }

    #[test]
    fn ineligible_lines_get_nothing_and_do_not_count() {
        let lines = [(1000, false), (300, true), (700, true)];
        let (discount, shares) = allocate(Kind::Percent, 10, &lines);
        assert_eq!(discount, 100, "10 % of the eligible 1000 only");
        assert_eq!(shares, vec![0, 30, 70]);
        check(&lines, discount, &shares);
        let (discount, shares) = allocate(Kind::Amount, 5_000, &lines);
        assert_eq!(
            discount, 1000,
            "an amount is capped at the eligible subtotal"
        );
        check(&lines, discount, &shares);
    }

    #[test]
    fn nothing_eligible_is_no_discount() {
        assert_eq!(allocate(Kind::Percent, 50, &[(100, false)]), (0, vec![0]));
        assert_eq!(allocate(Kind::Amount, 50, &[]), (0, vec![]));
    }

    #[test]
    fn a_hundred_percent_is_everything_eligible() {
        let lines = [(333, true), (333, true), (334, true)];
        let (discount, shares) = allocate(Kind::Percent, 100, &lines);
        assert_eq!(discount, 1000);
        assert_eq!(shares, vec![333, 333, 334]);
    }

    #[test]
    fn an_amount_split_three_ways_sums_exactly() {
        // 100 over three equal lines: 33.33 each; the one left-over cent goes to the first.
        let lines = [(10, true), (10, true), (10, true)];
        let (discount, shares) = allocate(Kind::Amount, 10, &lines);
        assert_eq!(discount, 10);
        assert_eq!(shares, vec![4, 3, 3]);
        check(&lines, discount, &shares);
    }

    #[test]
    fn many_random_carts_keep_the_invariants() {
        // A small deterministic generator (no dependency): totals and values vary widely.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..2_000 {
            let n = 1 + next(6) as usize;
            let lines: Vec<(i64, bool)> = (0..n)
                .map(|_| (next(100_000) as i64, next(4) != 0))
                .collect();
            let eligible: i64 = lines.iter().filter(|l| l.1).map(|l| l.0).sum();
            let (kind, value) = if next(2) == 0 {
                (Kind::Percent, 1 + next(100) as i64)
            } else {
                (Kind::Amount, 1 + next(200_000) as i64)
            };
            let (discount, shares) = allocate(kind, value, &lines);
            assert!(discount <= eligible);
            check(&lines, discount, &shares);
        }
    }
}
