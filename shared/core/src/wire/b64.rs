//! Bytes in JSON as base64 (standard alphabet, padded): stored output pages and socket
//! chunk frames carry a job's bytes this way, intact whatever they hold.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(data: impl AsRef<[u8]>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(data.as_ref()))
}

pub fn deserialize<'de, D: Deserializer<'de>, T: From<Vec<u8>>>(d: D) -> Result<T, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    STANDARD
        .decode(text.as_bytes())
        .map(T::from)
        .map_err(serde::de::Error::custom)
}
