//! The demo's domain events, as an operational service would declare them for the SDK: serde
//! types whose derived Avro schemas match the products' registered ones.

use apache_avro::AvroSchema;
use chrono::{DateTime, TimeZone as _, Utc};
use rand::{seq::IndexedRandom, Rng};
use serde::{Deserialize, Serialize};

use crate::sdk::DomainEvent;

const COUNTRIES: [&str; 8] = ["SE", "US", "GB", "DE", "BR", "JP", "FR", "NG"];
const GENRES: [&str; 8] = [
    "pop",
    "rock",
    "jazz",
    "hip-hop",
    "electronic",
    "folk",
    "classical",
    "afrobeats",
];

fn pick<T: Copy>(rng: &mut impl Rng, from: &[T]) -> T {
    from.choose(rng).copied().unwrap_or(from[0])
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Where a play happened (Avro enum `Device`): phone, desktop app, web player, smart speaker, car.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "com.example.player")]
#[allow(missing_docs)] // each variant is the Avro symbol of its name
pub enum Device {
    Mobile,
    Desktop,
    Web,
    Speaker,
    Car,
}

/// A listener started playing a track (`player.play-events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.example.player")]
pub struct PlayEvent {
    /// Unique id of this play.
    pub play_id: String,
    /// The listener.
    pub user_id: String,
    /// The track.
    pub track_id: String,
    /// Its artist.
    pub artist_id: String,
    /// Where it played.
    pub device: Device,
    /// ISO 3166-1 alpha-2 country of the listener.
    pub country: String,
    /// Start, in Unix milliseconds.
    pub started_at: i64,
    /// How long the track played.
    pub duration_ms: i64,
    /// Played to the end.
    pub completed: bool,
    /// Playlist or album the play came from.
    pub context: Option<String>,
}

impl DomainEvent for PlayEvent {
    const PRODUCT: &'static str = "player.play-events";
    const TYPE: &'static str = "com.example.player.track.played";
    fn subject(&self) -> Option<String> {
        Some(self.user_id.clone())
    }
    fn time(&self) -> Option<DateTime<Utc>> {
        at(self.started_at)
    }
}

impl PlayEvent {
    /// A random play at `time`.
    pub fn random(rng: &mut impl Rng, time: DateTime<Utc>) -> Self {
        use Device::*;
        Self {
            play_id: uuid::Uuid::new_v4().to_string(),
            user_id: format!("user-{}", rng.random_range(1..500)),
            track_id: format!("track-{}", rng.random_range(1..2000)),
            artist_id: format!("artist-{}", rng.random_range(1..100)),
            device: pick(rng, &[Mobile, Desktop, Web, Speaker, Car]),
            country: pick(rng, &COUNTRIES).to_owned(),
            started_at: millis(time),
            duration_ms: rng.random_range(5_000..400_000),
            completed: rng.random_bool(0.7),
            context: rng
                .random_bool(0.5)
                .then(|| format!("playlist-{}", rng.random_range(1..50))),
        }
    }
}

/// A track of an artist was played (`artists.artist-plays`), derived from a [`PlayEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.example.artists")]
pub struct ArtistPlayed {
    /// The artist.
    pub artist_id: String,
    /// The play in `player.play-events` this comes from.
    pub play_id: String,
    /// The track.
    pub track_id: String,
    /// ISO 3166-1 alpha-2 country of the listener.
    pub country: String,
    /// When the play started, in Unix milliseconds.
    pub played_at: i64,
    /// How long the track played.
    pub listened_ms: i64,
}

impl DomainEvent for ArtistPlayed {
    const PRODUCT: &'static str = "artists.artist-plays";
    const TYPE: &'static str = "com.example.artists.artist.played";
    fn subject(&self) -> Option<String> {
        Some(self.artist_id.clone())
    }
    fn time(&self) -> Option<DateTime<Utc>> {
        at(self.played_at)
    }
    fn id(&self) -> Option<String> {
        // one event per play: a play read twice gives the same event, a repeat consumers drop
        Some(format!("play-{}", self.play_id))
    }
}

impl From<&PlayEvent> for ArtistPlayed {
    fn from(play: &PlayEvent) -> Self {
        Self {
            artist_id: play.artist_id.clone(),
            play_id: play.play_id.clone(),
            track_id: play.track_id.clone(),
            country: play.country.clone(),
            played_at: play.started_at,
            listened_ms: play.duration_ms,
        }
    }
}

/// An artist's public profile changed (`artists.profile-changes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.example.artists")]
pub struct ArtistProfileChanged {
    /// The artist.
    pub artist_id: String,
    /// Display name.
    pub name: String,
    /// Genres.
    pub genres: Vec<String>,
    /// Home country.
    pub country: String,
    /// Verified by the platform.
    pub verified: bool,
    /// Follower count.
    pub followers: i64,
    /// When, in Unix milliseconds.
    pub changed_at: i64,
}

impl DomainEvent for ArtistProfileChanged {
    const PRODUCT: &'static str = "artists.profile-changes";
    const TYPE: &'static str = "com.example.artists.profile.changed";
    fn subject(&self) -> Option<String> {
        Some(self.artist_id.clone())
    }
    fn time(&self) -> Option<DateTime<Utc>> {
        at(self.changed_at)
    }
}

impl ArtistProfileChanged {
    /// A random profile change at `time`.
    pub fn random(rng: &mut impl Rng, time: DateTime<Utc>) -> Self {
        let n = rng.random_range(1..100);
        Self {
            artist_id: format!("artist-{n}"),
            name: format!("Artist {n}"),
            genres: GENRES
                .choose_multiple(rng, 2)
                .map(|g| (*g).to_owned())
                .collect(),
            country: pick(rng, &COUNTRIES).to_owned(),
            verified: rng.random_bool(0.4),
            followers: rng.random_range(0..5_000_000),
            changed_at: millis(time),
        }
    }
}

/// A label's tier (Avro enum `Tier`): independent, major, or part of a major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "com.example.labels")]
#[allow(missing_docs)] // each variant is the Avro symbol of its name
pub enum Tier {
    Indie,
    Major,
    Sublabel,
}

/// A record label signed up (`labels.onboarded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.example.labels")]
pub struct LabelOnboarded {
    /// The label.
    pub label_id: String,
    /// Its name.
    pub name: String,
    /// Its country.
    pub country: String,
    /// Its tier.
    pub tier: Tier,
    /// Tracks in the label's catalog.
    pub catalog_size: i32,
    /// Its distributor, if any.
    pub distributor: Option<String>,
    /// When, in Unix milliseconds.
    pub onboarded_at: i64,
}

impl DomainEvent for LabelOnboarded {
    const PRODUCT: &'static str = "labels.onboarded";
    const TYPE: &'static str = "com.example.labels.label.onboarded";
    fn subject(&self) -> Option<String> {
        Some(self.label_id.clone())
    }
    fn time(&self) -> Option<DateTime<Utc>> {
        at(self.onboarded_at)
    }
}

impl LabelOnboarded {
    /// A random onboarding at `time`.
    pub fn random(rng: &mut impl Rng, time: DateTime<Utc>) -> Self {
        let n = rng.random_range(1..100_000);
        Self {
            label_id: format!("label-{n}"),
            name: format!("Label {n} Records"),
            country: pick(rng, &COUNTRIES).to_owned(),
            tier: pick(rng, &[Tier::Indie, Tier::Major, Tier::Sublabel]),
            catalog_size: rng.random_range(1..20_000),
            distributor: rng.random_bool(0.5).then(|| "Global Distro".to_owned()),
            onboarded_at: millis(time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::compat::cannot_read;
    use apache_avro::Schema;

    fn committed(path: &str) -> Schema {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        Schema::parse_str(&std::fs::read_to_string(root.join(path)).unwrap()).unwrap()
    }

    #[test]
    fn each_type_resolves_to_its_committed_schema() {
        for (ours, path) in [
            (PlayEvent::get_schema(), "schemas/player/play-event.avsc"),
            (
                ArtistProfileChanged::get_schema(),
                "schemas/artists/profile-changed.avsc",
            ),
            (
                LabelOnboarded::get_schema(),
                "schemas/labels/label-onboarded.avsc",
            ),
        ] {
            let registered = committed(path);
            assert_eq!(cannot_read(&ours, &registered), None, "{path}");
            assert_eq!(cannot_read(&registered, &ours), None, "{path}");
        }
    }
}
