//! Pusher Channels' input rules, checked before anything is sent.
//!
//! Pusher rejects a bad request as a whole, so one bad channel name would fail
//! every channel of a trigger and every event of a batch. Checking here lets
//! the caller dead-letter the one bad intent with a message naming the input,
//! instead of learning about it from a 400 after a network round trip.
//!
//! The rules follow Pusher's documentation where it is stricter than the SDKs
//! (channel names at most 164 characters, not the SDKs' 200).
//!
//! Why under `config`: config is the bottom layer and imports nothing from
//! the rest of the crate, yet it must refuse at load a channel template
//! that renders no valid channel name. These rules are pure (no imports, no
//! state), so they sit at the bottom with the settings checked against
//! them, and `pusher::validate` re-exports them for the client,
//! auth and intent decoding.

/// At most this many channels in one trigger (Pusher's REST API and all SDKs).
pub const MAX_CHANNELS_PER_TRIGGER: usize = 100;

/// Longest channel name, prefix included. Pusher's docs say 164; the SDKs
/// check 200, but a name between the two may be refused by the server.
pub const MAX_CHANNEL_NAME_LEN: usize = 164;

/// Longest event name, as the Node and Python SDKs enforce.
pub const MAX_EVENT_NAME_LEN: usize = 200;

/// Pusher's limit on one event's `data`, in bytes; dedicated clusters may be
/// configured with more, which is why the limit is a parameter elsewhere.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 10_240;

/// At most this many events in one batch request; the server answers 400
/// ("Batch too large") above it and no SDK checks it client-side.
pub const MAX_BATCH_EVENTS: usize = 10;

/// Longest user id accepted, as the Python and Go SDKs check. Presence
/// channels are stricter (128) but that limit belongs to channel auth.
pub const MAX_USER_ID_LEN: usize = 200;

/// Prefix of channels whose payload is end-to-end encrypted.
const ENCRYPTED_PREFIX: &str = "private-encrypted-";

/// Prefix of channels that need a channel authorisation to subscribe.
const PRIVATE_PREFIX: &str = "private-";

/// Prefix of presence channels.
const PRESENCE_PREFIX: &str = "presence-";

/// Prefix of the reserved channel Pusher's `sendToUser` delivers through.
const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// Why an input would be refused by Pusher; each variant names the input.
///
/// Inputs are printed with `{:?}` because they come from untrusted messages
/// and end up in logs and dead letters: quoting and escaping keeps a newline
/// or quote in a channel name from forging or garbling a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A channel name was the empty string.
    #[error("channel name is empty")]
    ChannelEmpty,

    /// A channel name is longer than [`MAX_CHANNEL_NAME_LEN`] characters.
    #[error("channel {channel:?} is {len} characters long (limit 164)")]
    ChannelTooLong {
        /// The offending name.
        channel: String,
        /// Its length in characters.
        len: usize,
    },

    /// A channel name has a character outside Pusher's channel charset.
    #[error("channel {channel:?} has character {bad:?} (allowed: A-Z a-z 0-9 _ - = @ , . ;)")]
    ChannelCharacters {
        /// The offending name.
        channel: String,
        /// The first character that is not allowed.
        bad: char,
    },

    /// More than [`MAX_CHANNELS_PER_TRIGGER`] channels in one trigger.
    #[error("{count} channels in one trigger (limit 100)")]
    TooManyChannels {
        /// How many channels were given.
        count: usize,
    },

    /// A trigger with no channel at all.
    #[error("no channels given (need 1 to 100)")]
    NoChannels,

    /// An event name was the empty string.
    #[error("event name is empty")]
    EventNameEmpty,

    /// An event name is longer than [`MAX_EVENT_NAME_LEN`] characters.
    #[error("event name is {len} characters long (limit 200)")]
    EventNameTooLong {
        /// Its length in characters.
        len: usize,
    },

    /// A socket id that is not `digits.digits`.
    #[error("socket id {socket_id:?} is not of the form digits.digits (e.g. \"123.456\")")]
    SocketId {
        /// The offending socket id.
        socket_id: String,
    },

    /// An event's `data` is larger than the limit.
    #[error("{}data is {bytes} bytes (limit {limit})", channel_prefix(channel.as_deref()))]
    DataTooLarge {
        /// The channel it was for, when the check was made per channel.
        channel: Option<String>,
        /// Size of the JSON-encoded data in bytes.
        bytes: usize,
        /// The limit it exceeded.
        limit: usize,
    },

    /// A `private-encrypted-` channel together with other channels.
    #[error("a private-encrypted- channel must be triggered alone, got {count} channels")]
    EncryptedMultiChannel {
        /// How many channels were given.
        count: usize,
    },

    /// A `batch_events` request with no event or more than [`MAX_BATCH_EVENTS`].
    #[error("{count} events in one batch request (need 1 to 10)")]
    BatchSize {
        /// How many events were given.
        count: usize,
    },

    /// A caller's query parameter that would collide with the signature's.
    #[error("query parameter {name:?} is reserved for request signing")]
    ReservedParam {
        /// The parameter's name.
        name: String,
    },

    /// A user id that is empty, too long, or has characters outside the charset.
    #[error("user id {user_id:?} must be 1 to 200 characters from A-Z a-z 0-9 _ - = @ , . ;")]
    UserId {
        /// The offending user id.
        user_id: String,
    },
}

/// Lets `DataTooLarge` read naturally with and without a channel.
fn channel_prefix(channel: Option<&str>) -> String {
    channel.map_or_else(String::new, |c| format!("channel {c:?}: "))
}

/// Pusher's channel charset: `[-a-zA-Z0-9_=@,.;]`.
fn is_channel_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

/// Checks one channel name: 1 to 164 characters from Pusher's charset, or the
/// reserved `#server-to-user-{user_id}` form with a user id from that charset.
pub fn validate_channel(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::ChannelEmpty);
    }
    let len = name.chars().count();
    if len > MAX_CHANNEL_NAME_LEN {
        return Err(ValidationError::ChannelTooLong {
            channel: name.to_owned(),
            len,
        });
    }
    // The '#' of the reserved prefix is outside the charset, so the prefix is
    // skipped only when a user id follows; a bare prefix then reports the '#'.
    let checked = match name.strip_prefix(SERVER_TO_USER_PREFIX) {
        Some(user_id) if !user_id.is_empty() => user_id,
        _ => name,
    };
    match checked.chars().find(|&c| !is_channel_char(c)) {
        Some(bad) => Err(ValidationError::ChannelCharacters {
            channel: name.to_owned(),
            bad,
        }),
        None => Ok(()),
    }
}

/// Checks the channel list of one trigger: 1 to 100 valid names, and a
/// `private-encrypted-` channel only on its own, because its payload is
/// encrypted with a key derived from that one channel's name.
pub fn validate_channels(channels: &[String]) -> Result<(), ValidationError> {
    let count = channels.len();
    if count == 0 {
        return Err(ValidationError::NoChannels);
    }
    if count > MAX_CHANNELS_PER_TRIGGER {
        return Err(ValidationError::TooManyChannels { count });
    }
    for channel in channels {
        validate_channel(channel)?;
    }
    if count > 1 && channels.iter().any(|c| is_encrypted_channel(c)) {
        return Err(ValidationError::EncryptedMultiChannel { count });
    }
    Ok(())
}

/// Checks an event name: 1 to 200 characters.
pub fn validate_event_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::EventNameEmpty);
    }
    let len = name.chars().count();
    if len > MAX_EVENT_NAME_LEN {
        return Err(ValidationError::EventNameTooLong { len });
    }
    Ok(())
}

/// Checks a socket id is exactly ASCII digits, a dot, ASCII digits.
///
/// Strict on purpose: a socket id is signed into channel auth strings
/// (`socket_id:channel`), and laxer checks allowed auth delegation through
/// crafted ids such as `1.1:` (Pusher Ruby SDK 0.14.5 security fix).
pub fn validate_socket_id(socket_id: &str) -> Result<(), ValidationError> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match socket_id.split_once('.') {
        Some((left, right)) if all_digits(left) && all_digits(right) => Ok(()),
        _ => Err(ValidationError::SocketId {
            socket_id: socket_id.to_owned(),
        }),
    }
}

/// Checks the JSON-encoded `data` of one event is at most `limit` bytes.
///
/// `channel` only names the channel in the error, for callers that check
/// per channel (an encrypted payload grows, so its size depends on it).
pub fn validate_data_size(
    channel: Option<&str>,
    data: &str,
    limit: usize,
) -> Result<(), ValidationError> {
    let bytes = data.len();
    if bytes > limit {
        return Err(ValidationError::DataTooLarge {
            channel: channel.map(str::to_owned),
            bytes,
            limit,
        });
    }
    Ok(())
}

/// Checks a user id for user authentication and `#server-to-user-` channels:
/// 1 to 200 characters from the channel charset.
pub fn validate_user_id(user_id: &str) -> Result<(), ValidationError> {
    let ok = !user_id.is_empty()
        && user_id.chars().count() <= MAX_USER_ID_LEN
        && user_id.chars().all(is_channel_char);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::UserId {
            user_id: user_id.to_owned(),
        })
    }
}

/// True for `private-encrypted-` channels, whose data must be encrypted with
/// the master key before it is sent.
pub fn is_encrypted_channel(name: &str) -> bool {
    name.starts_with(ENCRYPTED_PREFIX)
}

/// True for plain private channels: `private-` but NOT `private-encrypted-`.
///
/// Both kinds need a channel authorisation to subscribe; to ask "does this
/// channel need auth?" use `is_private_channel(n) || is_encrypted_channel(n)`.
pub fn is_private_channel(name: &str) -> bool {
    name.starts_with(PRIVATE_PREFIX) && !is_encrypted_channel(name)
}

/// True for `presence-` channels, whose subscribers carry user data.
pub fn is_presence_channel(name: &str) -> bool {
    name.starts_with(PRESENCE_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_with_every_allowed_character_is_accepted() {
        assert_eq!(validate_channel("AZaz09_-=@,.;"), Ok(()));
    }

    #[test]
    fn empty_channel_is_rejected() {
        assert_eq!(validate_channel(""), Err(ValidationError::ChannelEmpty));
    }

    #[test]
    fn channel_of_164_characters_is_accepted_and_165_rejected() {
        assert_eq!(validate_channel(&"a".repeat(164)), Ok(()));
        let long = "a".repeat(165);
        let err = validate_channel(&long).unwrap_err();
        assert_eq!(
            err,
            ValidationError::ChannelTooLong {
                channel: long.clone(),
                len: 165
            }
        );
        assert!(err.to_string().contains("(limit 164)"), "{err}");
    }

    #[test]
    fn channel_with_space_names_the_character_and_the_charset() {
        let err = validate_channel("foo bar").unwrap_err();
        assert_eq!(
            err.to_string(),
            "channel \"foo bar\" has character ' ' (allowed: A-Z a-z 0-9 _ - = @ , . ;)"
        );
    }

    #[test]
    fn non_ascii_channel_is_rejected() {
        assert_eq!(
            validate_channel("café"),
            Err(ValidationError::ChannelCharacters {
                channel: "café".into(),
                bad: 'é'
            })
        );
    }

    #[test]
    fn server_to_user_channel_is_accepted_only_with_a_valid_user_id() {
        assert_eq!(validate_channel("#server-to-user-42"), Ok(()));
        assert_eq!(validate_channel("#server-to-user-a=b@c"), Ok(()));
        assert_eq!(
            validate_channel("#server-to-user-"),
            Err(ValidationError::ChannelCharacters {
                channel: "#server-to-user-".into(),
                bad: '#'
            })
        );
        assert_eq!(
            validate_channel("#server-to-user-a b"),
            Err(ValidationError::ChannelCharacters {
                channel: "#server-to-user-a b".into(),
                bad: ' '
            })
        );
        assert!(validate_channel("#other").is_err());
    }

    #[test]
    fn channel_list_needs_one_to_one_hundred_channels() {
        assert_eq!(validate_channels(&[]), Err(ValidationError::NoChannels));
        let hundred: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        assert_eq!(validate_channels(&hundred), Ok(()));
        let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
        assert_eq!(
            validate_channels(&many),
            Err(ValidationError::TooManyChannels { count: 101 })
        );
    }

    #[test]
    fn channel_list_reports_the_first_bad_channel() {
        let channels = vec!["ok".to_owned(), "not ok".to_owned()];
        assert_eq!(
            validate_channels(&channels),
            Err(ValidationError::ChannelCharacters {
                channel: "not ok".into(),
                bad: ' '
            })
        );
    }

    #[test]
    fn encrypted_channel_is_accepted_alone_and_rejected_with_others() {
        assert_eq!(validate_channels(&["private-encrypted-a".into()]), Ok(()));
        let err = validate_channels(&["private-encrypted-a".into(), "b".into()]).unwrap_err();
        assert_eq!(err, ValidationError::EncryptedMultiChannel { count: 2 });
        assert_eq!(
            err.to_string(),
            "a private-encrypted- channel must be triggered alone, got 2 channels"
        );
    }

    #[test]
    fn event_name_needs_one_to_two_hundred_characters() {
        assert_eq!(
            validate_event_name(""),
            Err(ValidationError::EventNameEmpty)
        );
        assert_eq!(validate_event_name(&"e".repeat(200)), Ok(()));
        assert_eq!(
            validate_event_name(&"e".repeat(201)),
            Err(ValidationError::EventNameTooLong { len: 201 })
        );
    }

    #[test]
    fn socket_id_must_be_digits_dot_digits() {
        assert_eq!(validate_socket_id("123.456"), Ok(()));
        assert_eq!(validate_socket_id("0.0"), Ok(()));
        for bad in [
            "1.1:", ":1.1", ":\n1.1", "1.1\n:", "1.1\n", ".1", "1.", "1", "", "1.1.1", "a.1",
            "1.a", " 1.1", "-1.1", "١.١",
        ] {
            assert_eq!(
                validate_socket_id(bad),
                Err(ValidationError::SocketId {
                    socket_id: bad.into()
                }),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn socket_id_error_escapes_control_characters() {
        let err = validate_socket_id("1.1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "socket id \"1.1\\n\" is not of the form digits.digits (e.g. \"123.456\")"
        );
    }

    #[test]
    fn data_at_the_limit_is_accepted_and_one_byte_over_rejected() {
        let data = "x".repeat(10);
        assert_eq!(validate_data_size(None, &data, 10), Ok(()));
        assert_eq!(
            validate_data_size(None, &data, 9),
            Err(ValidationError::DataTooLarge {
                channel: None,
                bytes: 10,
                limit: 9
            })
        );
    }

    #[test]
    fn data_size_counts_bytes_not_characters() {
        assert!(validate_data_size(None, "é", 1).is_err());
    }

    #[test]
    fn data_too_large_message_names_the_channel_when_given() {
        let with = validate_data_size(Some("c"), "xx", 1).unwrap_err();
        assert_eq!(with.to_string(), "channel \"c\": data is 2 bytes (limit 1)");
        let without = validate_data_size(None, "xx", 1).unwrap_err();
        assert_eq!(without.to_string(), "data is 2 bytes (limit 1)");
    }

    #[test]
    fn user_id_needs_one_to_two_hundred_charset_characters() {
        assert_eq!(validate_user_id("user-1@example.com"), Ok(()));
        assert_eq!(validate_user_id(&"u".repeat(200)), Ok(()));
        for bad in [String::new(), "u".repeat(201), "a b".into(), "a:b".into()] {
            assert_eq!(
                validate_user_id(&bad),
                Err(ValidationError::UserId {
                    user_id: bad.clone()
                })
            );
        }
        assert_eq!(
            validate_user_id("a b").unwrap_err().to_string(),
            "user id \"a b\" must be 1 to 200 characters from A-Z a-z 0-9 _ - = @ , . ;"
        );
    }

    #[test]
    fn channel_kind_predicates_tell_private_encrypted_and_presence_apart() {
        assert!(is_private_channel("private-a"));
        assert!(!is_private_channel("private-encrypted-a"));
        assert!(is_encrypted_channel("private-encrypted-a"));
        assert!(!is_encrypted_channel("private-a"));
        assert!(is_presence_channel("presence-a"));
        assert!(!is_presence_channel("private-a"));
        assert!(!is_private_channel("a-private-b"));
    }

    #[test]
    fn other_messages_name_the_value_and_the_limit() {
        assert_eq!(
            ValidationError::ChannelEmpty.to_string(),
            "channel name is empty"
        );
        assert_eq!(
            ValidationError::TooManyChannels { count: 101 }.to_string(),
            "101 channels in one trigger (limit 100)"
        );
        assert_eq!(
            ValidationError::NoChannels.to_string(),
            "no channels given (need 1 to 100)"
        );
        assert_eq!(
            ValidationError::EventNameTooLong { len: 201 }.to_string(),
            "event name is 201 characters long (limit 200)"
        );
    }
}
