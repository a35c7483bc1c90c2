//! Where snapshots go: any `object_store` backend chosen by URL (`file:///dir` or a plain path,
//! `memory://`, `s3://bucket/prefix`). Every file is written create-only: a retry after a crash
//! finds the file it wrote before and checks it holds the same bytes; it never overwrites.

use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::{path::Path, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use url::Url;

use super::{Error, Result};

/// A snapshot store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    base: String,
}

impl Store {
    /// The store at `location`: a URL (`file:///dir`, `memory://`, `s3://bucket/prefix`; S3
    /// credentials from the usual `AWS_*` variables) or a directory path (created if missing).
    pub fn open(location: &str) -> Result<Self> {
        let options = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        Self::open_with(location, options)
    }

    /// [`Store::open`] with the backend's options given (`aws_endpoint`, `aws_access_key_id`, …:
    /// `object_store`'s keys) rather than read from the environment.
    pub fn open_with(
        location: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let url = match Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            _ => {
                let dir = std::path::Path::new(location);
                std::fs::create_dir_all(dir).map_err(|e| Error::Store {
                    what: format!("creating {}", dir.display()),
                    source: Box::new(e),
                })?;
                let dir = dir.canonicalize().map_err(|e| Error::Store {
                    what: format!("resolving {}", dir.display()),
                    source: Box::new(e),
                })?;
                Url::from_directory_path(&dir).map_err(|()| {
                    Error::Unexpected(format!("{} is not an absolute directory", dir.display()))
                })?
            }
        };
        if url.scheme() == "file" {
            if let Ok(dir) = url.to_file_path() {
                std::fs::create_dir_all(&dir).map_err(|e| Error::Store {
                    what: format!("creating {}", dir.display()),
                    source: Box::new(e),
                })?;
            }
        }
        let (inner, prefix) = object_store::parse_url_opts(&url, options).map_err(|e| Error::Store {
            what: format!("opening the snapshot store {url}; use a directory, file:///dir, memory:// or s3://bucket/prefix"),
            source: Box::new(e),
        })?;
        Ok(Self {
            inner: Arc::from(inner),
            prefix,
            base: url.as_str().trim_end_matches('/').to_owned(),
        })
    }

    fn path(&self, relative: &str) -> Path {
        self.prefix
            .parts()
            .chain(
                relative
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .map(object_store::path::PathPart::from),
            )
            .collect()
    }

    /// The URI of a file of the store.
    pub fn uri(&self, relative: &str) -> String {
        format!("{}/{relative}", self.base)
    }

    /// Writes `bytes` at `relative` unless it exists; if it does, it must hold the same bytes.
    pub async fn put_new(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        self.put_new_or(relative, bytes, |existing, new| existing == new)
            .await
    }

    /// Writes `bytes` at `relative` unless it exists; if it does, `same(existing, bytes)` must
    /// hold.
    pub async fn put_new_or(
        &self,
        relative: &str,
        bytes: Vec<u8>,
        same: impl FnOnce(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let path = self.path(relative);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&path, PutPayload::from(bytes.clone()), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self.get(relative).await?;
                if same(&existing, &bytes) {
                    Ok(())
                } else {
                    Err(Error::Conflict {
                        path: self.uri(relative),
                    })
                }
            }
            Err(e) => Err(Error::Store {
                what: format!("writing {}", self.uri(relative)),
                source: Box::new(e),
            }),
        }
    }

    /// The bytes at `relative`.
    pub async fn get(&self, relative: &str) -> Result<Vec<u8>> {
        let store_error = |e: object_store::Error| Error::Store {
            what: format!("reading {}", self.uri(relative)),
            source: Box::new(e),
        };
        let result = self
            .inner
            .get(&self.path(relative))
            .await
            .map_err(store_error)?;
        Ok(result.bytes().await.map_err(store_error)?.to_vec())
    }

    /// The bytes at `relative`, or `None` if there is no such file.
    pub async fn get_opt(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        match self.inner.get(&self.path(relative)).await {
            Ok(result) => Ok(Some(
                result
                    .bytes()
                    .await
                    .map_err(|e| Error::Store {
                        what: format!("reading {}", self.uri(relative)),
                        source: Box::new(e),
                    })?
                    .to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::Store {
                what: format!("reading {}", self.uri(relative)),
                source: Box::new(e),
            }),
        }
    }

    /// Writes `bytes` at `relative`, replacing what is there: only for pointers to create-only
    /// files (a table's `version-hint.text`), which a reader may find behind.
    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        self.inner
            .put(&self.path(relative), PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| Error::Store {
                what: format!("writing {}", self.uri(relative)),
                source: Box::new(e),
            })
    }

    /// Paths (relative) of every file under `relative`, sorted.
    pub async fn list(&self, relative: &str) -> Result<Vec<String>> {
        let prefix = self.path(relative);
        let skip = self.prefix.parts().count();
        let mut paths: Vec<String> = self
            .inner
            .list(Some(&prefix))
            .map_ok(|meta| {
                meta.location
                    .parts()
                    .skip(skip)
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .try_collect()
            .await
            .map_err(|e| Error::Store {
                what: format!("listing {}", self.uri(relative)),
                source: Box::new(e),
            })?;
        paths.sort();
        Ok(paths)
    }

    /// Deletes the file at `relative` (old progress files).
    pub async fn delete(&self, relative: &str) -> Result<()> {
        self.inner
            .delete(&self.path(relative))
            .await
            .map_err(|e| Error::Store {
                what: format!("deleting {}", self.uri(relative)),
                source: Box::new(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_written_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("snapshots").to_str().unwrap()).unwrap();
        store
            .put_new("a/b/part.parquet", b"one".to_vec())
            .await
            .unwrap();
        // a replay writing the same bytes is fine
        store
            .put_new("a/b/part.parquet", b"one".to_vec())
            .await
            .unwrap();
        let error = store
            .put_new("a/b/part.parquet", b"two".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Conflict { .. }), "{error}");
        assert_eq!(store.get("a/b/part.parquet").await.unwrap(), b"one");
        assert_eq!(store.list("a").await.unwrap(), ["a/b/part.parquet"]);
        assert_eq!(store.get_opt("a/missing").await.unwrap(), None);
        assert!(store.uri("a/b/part.parquet").starts_with("file:///"));
    }

    #[test]
    fn backends_are_chosen_by_url() {
        assert!(Store::open("memory://").is_ok());
        // S3 settings come from the AWS_* variables; opening does not reach the network
        assert!(Store::open("s3://snapshots/prefix").is_ok());
        let error = Store::open("gopher://nowhere").unwrap_err();
        assert!(error.to_string().contains("s3://bucket/prefix"), "{error}");
    }
}
