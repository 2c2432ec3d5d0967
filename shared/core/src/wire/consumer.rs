//! An executor's request for its own consumer of `TW_INST` (`tw.consumer.inst.<guid>`), and
//! the kill broker's answer. The executor may not make consumers itself: a consumer's config
//! (a push consumer's delivery subject, above all) is in the request body, which no NATS
//! permission can check, so a trusted service makes it, with the one config there is.

use serde::{Deserialize, Serialize};

/// Asks for the instance's consumer: kept when it answers, made (again) when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRequest {
    /// A consumer made now starts after this stream sequence of `TW_INST` (the instance's
    /// dispatch floor; 0: from the stream's first message). Ignored when it is past the
    /// stream's last sequence (a stream made again since).
    #[serde(default)]
    pub after: u64,
}

/// What the broker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerOutcome {
    /// It exists and answers: left as it is.
    Kept,
    /// There was none: made.
    Made,
    /// It did not answer (its node is away): deleted and made on a live node.
    MadeAgain,
}

/// The broker's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerReply {
    /// `None` when the consumer could not be made; `error` says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ConsumerOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn consumer_json_is_pinned() {
        let req = ConsumerRequest { after: 42 };
        let v = serde_json::to_value(req).unwrap();
        assert_eq!(v, json!({"after": 42}));
        assert_eq!(serde_json::from_value::<ConsumerRequest>(v).unwrap(), req);
        assert_eq!(
            serde_json::from_value::<ConsumerRequest>(json!({})).unwrap(),
            ConsumerRequest { after: 0 }
        );
        let made = ConsumerReply {
            outcome: Some(ConsumerOutcome::MadeAgain),
            error: None,
        };
        let v = serde_json::to_value(&made).unwrap();
        assert_eq!(v, json!({"outcome": "made_again"}));
        assert_eq!(serde_json::from_value::<ConsumerReply>(v).unwrap(), made);
        let failed = ConsumerReply {
            outcome: None,
            error: Some("no JetStream".into()),
        };
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"error": "no JetStream"})
        );
    }
}
