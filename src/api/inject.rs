//! DynamoDB-level error injection: "fail N% of PutItems with ProvisionedThroughputExceeded", so
//! users can exercise their retry code. Rules are cluster-wide and apply on the node that
//! executes the operation (after any forwarding), before it does anything, so an injected
//! failure never has a side effect.

use std::sync::{Arc, RwLock};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::api::dispatch::Op;
use crate::{Error, Result};

/// Error names `kvsim fault errors --error` accepts.
pub const INJECTABLE: [&str; 6] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "TransactionConflictException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
];

/// One injection rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRule {
    /// Operation name (`PutItem`), or `*` for every operation.
    pub op: String,
    /// One of [`INJECTABLE`].
    pub error: String,
    /// Probability of failing each matching request, 0 to 1.
    pub rate: f64,
}

/// The cluster's rules.
pub type SharedErrorRules = Arc<RwLock<Vec<ErrorRule>>>;

/// One line per fault in force: the network's, then the injected errors (either engine's
/// cluster adds its own after them).
pub fn describe_faults(
    network: &crate::faults::SharedFaults,
    errors: &SharedErrorRules,
) -> Vec<String> {
    let mut lines = network.read().map(|f| f.describe()).unwrap_or_default();
    if let Ok(rules) = errors.read() {
        lines.extend(rules.iter().map(ErrorRule::describe));
    }
    lines
}

impl ErrorRule {
    /// Validates a rule.
    ///
    /// # Errors
    /// `Validation` naming the bad operation, error or rate.
    pub fn new(op: &str, error: &str, rate: f64) -> Result<ErrorRule> {
        if op != "*" && Op::parse(op).is_none() {
            return Err(Error::validation(format!(
                "unknown operation {op}; use a DynamoDB operation name such as PutItem, or * for all"
            )));
        }
        if !INJECTABLE.contains(&error) {
            return Err(Error::validation(format!(
                "cannot inject {error}; choose one of {}",
                INJECTABLE.join(", ")
            )));
        }
        if !(0.0..=1.0).contains(&rate) || rate.is_nan() {
            return Err(Error::validation(format!(
                "--rate must be between 0 and 1, got {rate}"
            )));
        }
        Ok(ErrorRule {
            op: op.to_string(),
            error: error.to_string(),
            rate,
        })
    }

    fn error_for(&self, op: &str) -> Error {
        let msg = format!(
            "injected by kvsim fault errors ({} {}% of {})",
            self.error,
            self.rate * 100.0,
            self.op
        );
        match self.error.as_str() {
            "ProvisionedThroughputExceededException" => {
                Error::ProvisionedThroughputExceeded(format!(
                    "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API. [{msg}]"
                ))
            }
            "ThrottlingException" => Error::Throttling(format!(
                "Rate of requests exceeds the allowed throughput. [{msg}]"
            )),
            "TransactionConflictException" => {
                Error::TransactionConflict(format!("Transaction is ongoing for the item. [{msg}]"))
            }
            "RequestLimitExceeded" => Error::RequestLimitExceeded(format!(
                "Throughput exceeds the current throughput limit for your account. [{msg}]"
            )),
            "ServiceUnavailable" => {
                Error::Unavailable(format!("{op}: service unavailable [{msg}]"))
            }
            _ => Error::Internal(format!("Internal server error [{msg}]")),
        }
    }

    /// One line for status and `fault list`.
    pub fn describe(&self) -> String {
        format!("errors {} {} {}%", self.op, self.error, self.rate * 100.0)
    }
}

/// The injected error for this request of `op`, if a rule fires.
pub fn roll(rules: &SharedErrorRules, op: Op) -> Option<Error> {
    let name = format!("{op:?}");
    let rules = rules.read().ok()?;
    let mut rng = rand::thread_rng();
    rules
        .iter()
        .filter(|r| r.op == "*" || r.op == name)
        .find(|r| rng.gen_bool(r.rate.clamp(0.0, 1.0)))
        .map(|r| r.error_for(&name))
}

/// Adds or replaces the rule for the rule's operation and error (an operation may fail with
/// several errors, each at its own rate); a rate of 0 removes it.
pub fn set_rule(rules: &SharedErrorRules, rule: ErrorRule) {
    if let Ok(mut rules) = rules.write() {
        rules.retain(|r| !(r.op == rule.op && r.error == rule.error));
        if rule.rate > 0.0 {
            rules.push(rule);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_validate_and_fire_at_their_rate() {
        assert!(ErrorRule::new("Frob", "ThrottlingException", 0.5).is_err());
        assert!(ErrorRule::new("PutItem", "NoSuchError", 0.5).is_err());
        assert!(ErrorRule::new("PutItem", "ThrottlingException", 1.5).is_err());
        let rules: SharedErrorRules = Arc::default();
        set_rule(
            &rules,
            ErrorRule::new("PutItem", "ThrottlingException", 1.0).expect("valid"),
        );
        assert!(matches!(
            roll(&rules, Op::PutItem),
            Some(Error::Throttling(_))
        ));
        assert!(roll(&rules, Op::GetItem).is_none());
        set_rule(
            &rules,
            ErrorRule::new("PutItem", "ThrottlingException", 0.0).expect("valid"),
        );
        assert!(roll(&rules, Op::PutItem).is_none());
    }
}
