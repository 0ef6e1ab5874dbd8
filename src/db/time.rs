//! Timestamps as Django stores them.
//!
//! Django on SQLite keeps datetimes as TEXT `YYYY-MM-DD HH:MM:SS.ffffff` (naive UTC, no `T`, no
//! offset) and compares them as strings in its filters, so anything else (sqlx writes RFC 3339)
//! silently breaks `last_login__lte` and friends. On PostgreSQL the columns are `timestamptz`
//! and bind normally. [`DjangoTime`] hides that difference so one SQL text serves both.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A UTC instant, stored the way Django stores it on each backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DjangoTime(pub OffsetDateTime);

const DJANGO_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]");
const READ_FORMAT: &[FormatItem<'static>] = format_description!(
    version = 1,
    "[year]-[month]-[day][first [ ] [T]][hour]:[minute]:[second][optional [.[subsecond]]]"
);

impl DjangoTime {
    pub fn now() -> Self {
        // Django keeps microseconds; dropping the rest keeps both backends' values equal.
        let now = OffsetDateTime::now_utc();
        let micros = now.microsecond();
        DjangoTime(now.replace_microsecond(micros).unwrap_or(now))
    }

    /// This instant plus whole seconds (saturating at the end of time).
    pub fn plus_secs(self, secs: u64) -> Self {
        let delta = time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX));
        DjangoTime(self.0.checked_add(delta).unwrap_or(self.0))
    }

    /// The SQLite text form, exactly as Django's `str(datetime)` for a UTC value.
    pub fn to_django_text(self) -> String {
        let utc = self.0.to_offset(UtcOffset::UTC);
        let formatted = utc.format(DJANGO_FORMAT).unwrap_or_default();
        // Python's str() drops the fraction when it is zero.
        match formatted.strip_suffix(".000000") {
            Some(whole) => whole.to_owned(),
            None => formatted,
        }
    }

    /// Parses the texts Django (and other writers) leave in SQLite datetime columns.
    pub fn parse_text(text: &str) -> Option<Self> {
        let text = text.trim();
        let (naive, offset) = split_offset(text)?;
        let parsed = PrimitiveDateTime::parse(naive, READ_FORMAT).ok()?;
        Some(DjangoTime(parsed.assume_offset(offset).to_offset(UtcOffset::UTC)))
    }
}

/// Splits a trailing `Z`, `+HH:MM` or `-HH:MM` off; `None` when it looks like an offset but is not.
fn split_offset(text: &str) -> Option<(&str, UtcOffset)> {
    if let Some(naive) = text.strip_suffix('Z') {
        return Some((naive, UtcOffset::UTC));
    }
    let cut = text.len().saturating_sub(6);
    if text.len() <= 19 || !text.is_char_boundary(cut) {
        return Some((text, UtcOffset::UTC));
    }
    let (head, tail) = text.split_at(cut);
    let bytes = tail.as_bytes();
    if !(tail.is_ascii() && (bytes[0] == b'+' || bytes[0] == b'-') && bytes[3] == b':') {
        return Some((text, UtcOffset::UTC));
    }
    let sign = if bytes[0] == b'-' { -1 } else { 1 };
    let hours: i8 = tail[1..3].parse().ok()?;
    let minutes: i8 = tail[4..6].parse().ok()?;
    let offset = UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
    Some((head, offset))
}

impl Type<Sqlite> for DjangoTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty) || <OffsetDateTime as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DjangoTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.to_django_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DjangoTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        DjangoTime::parse_text(text).ok_or_else(|| "not a datetime Django can read".into())
    }
}

impl Type<Postgres> for DjangoTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DjangoTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DjangoTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<Postgres>>::decode(value).map(DjangoTime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn writes_djangos_text_format() {
        let t = DjangoTime(datetime!(2026-11-22 14:43:05.240697 UTC));
        assert_eq!(t.to_django_text(), "2026-11-22 14:43:05.240697");
    }

    #[test]
    fn drops_a_zero_fraction_like_python() {
        let t = DjangoTime(datetime!(2026-11-22 14:43:05 UTC));
        assert_eq!(t.to_django_text(), "2026-11-22 14:43:05");
    }

    #[test]
    fn converts_other_offsets_to_utc() {
        let t = DjangoTime(datetime!(2026-11-22 16:00:00.5 +02:00));
        assert_eq!(t.to_django_text(), "2026-11-22 14:00:00.500000");
    }

    #[test]
    fn reads_every_form_found_in_the_wild() {
        let expected = datetime!(2026-11-22 14:43:05.240697 UTC);
        for text in [
            "2026-11-22 14:43:05.240697",
            "2026-11-22T14:43:05.240697",
            "2026-11-22T14:43:05.240697Z",
            "2026-11-22 14:43:05.240697+00:00",
            "2026-11-22 16:43:05.240697+02:00",
        ] {
            assert_eq!(DjangoTime::parse_text(text), Some(DjangoTime(expected)), "{text}");
        }
        assert_eq!(DjangoTime::parse_text("2026-11-22 14:43:05"), Some(DjangoTime(datetime!(2026-11-22 14:43:05 UTC))));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for text in
            ["", "yesterday", "2026-13-01 00:00:00", "2026-11-22 14:43:05+zz:zz", "é", "2026-11-22 14:43:05.1+é"]
        {
            assert_eq!(DjangoTime::parse_text(text), None, "{text}");
        }
    }
}
