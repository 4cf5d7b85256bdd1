//! Counts in messages, with their noun in the singular or the plural: "1 line", "2 lines".
//! The jobs that word their own reports (`watch`) and the command line share it.

/// `n` with the singular or plural noun: "1 line", "2 lines".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(0u64, "line", "lines"), "0 lines");
        assert_eq!(count(1u64, "entry", "entries"), "1 entry");
        assert_eq!(count(2u32, "address", "addresses"), "2 addresses");
    }
}
