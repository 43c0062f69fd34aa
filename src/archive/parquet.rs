//! The daily Parquet file: one day's measurements, each once, in
//! `(timestamp, namespace, name)` order, for Athena, DuckDB and replay.
//!
//! Raw objects are many small gzip files (288 a day); every reader pays per
//! object. One columnar file a day is what SQL engines read fastest and what
//! stays readable in ten years: Parquet is an open, self-describing format
//! with independent readers (pyarrow, DuckDB, Athena). Written with the
//! Apache Arrow project's `parquet` crate through its low-level column
//! writer (no arrow arrays: the columns are six plain ones), a row group at
//! a time, so memory stays bounded whatever the size of the day.
//!
//! The file names the raw objects it was made from in its key-value
//! metadata ([`COVERED_KEYS`]): a reader takes the rest of the day from the
//! raw objects that are not covered (a late run, an import).

use crate::document::{Document, RepositoryStats, RunTime};
use bytes::Bytes;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::io::Write;
use std::sync::Arc;

/// The key-value metadata entry that lists the raw object keys a file was
/// made from, one a line, sorted.
pub const COVERED_KEYS: &str = "docker_pulls.covered_keys";

/// Rows buffered before a row group is written: about 15 MB of buffers at
/// the longest names, small enough for a 64 MiB budget, large enough that
/// readers see few row groups (a 10,000-repository day is 2.88 million rows).
pub const ROW_GROUP_ROWS: usize = 131_072;

/// The file's schema. `timestamp` is UTC microseconds (Athena's and
/// DuckDB's `timestamp with time zone`-compatible instant);
/// `collaborator_count` is null where a listing-mode run had none.
const SCHEMA: &str = "
message docker_pulls {
  REQUIRED INT64 timestamp (TIMESTAMP(MICROS,true));
  REQUIRED BYTE_ARRAY namespace (UTF8);
  REQUIRED BYTE_ARRAY name (UTF8);
  REQUIRED INT64 pull_count;
  REQUIRED INT64 star_count;
  OPTIONAL INT64 collaborator_count;
}
";

/// A Parquet file that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// A measurement Parquet cannot hold exactly: a time finer than a
    /// microsecond, or a count above `i64::MAX`. Its day stays raw.
    #[error("{id} cannot be stored exactly in Parquet: {why}")]
    NotRepresentable { id: String, why: &'static str },
    #[error("Parquet: {0}")]
    Format(#[from] parquet::errors::ParquetError),
    #[error("not a docker-pulls Parquet file: {0}")]
    Shape(String),
}

/// The columns of the row group being filled.
#[derive(Default)]
struct Columns {
    timestamp: Vec<i64>,
    namespace: Vec<ByteArray>,
    name: Vec<ByteArray>,
    pull_count: Vec<i64>,
    star_count: Vec<i64>,
    /// Only the present values; `collaborator_defined` says which rows.
    collaborator_count: Vec<i64>,
    collaborator_defined: Vec<i16>,
}

impl Columns {
    fn len(&self) -> usize {
        self.timestamp.len()
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Writes documents, in the order given, to a Parquet file in `sink`.
pub struct Writer<W: Write + Send> {
    file: SerializedFileWriter<W>,
    columns: Columns,
    rows: usize,
}

impl<W: Write + Send> Writer<W> {
    /// A new file listing `covered` (the raw keys it is made from).
    pub fn new(sink: W, covered: &[String]) -> Result<Self, ParquetError> {
        let schema = Arc::new(parse_message_type(SCHEMA)?);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                COVERED_KEYS.to_owned(),
                covered.join("\n"),
            )]))
            .build();
        Ok(Self {
            file: SerializedFileWriter::new(sink, schema, Arc::new(properties))?,
            columns: Columns::default(),
            rows: 0,
        })
    }

    /// Adds one row; writes a row group when one is full.
    pub fn push(&mut self, document: &Document) -> Result<(), ParquetError> {
        let refuse = |why| ParquetError::NotRepresentable {
            id: document.id(),
            why,
        };
        let count = |value: u64| i64::try_from(value).map_err(|_| refuse("a count above i64::MAX"));
        let micros = document
            .timestamp
            .unix_micros()
            .ok_or_else(|| refuse("a time finer than a microsecond"))?;
        let stats = &document.stats;
        let (pulls, stars) = (count(stats.pull_count)?, count(stats.star_count)?);
        let collaborators = stats.collaborator_count.map(count).transpose()?;
        let c = &mut self.columns;
        c.timestamp.push(micros);
        c.namespace
            .push(ByteArray::from(stats.namespace.as_bytes().to_vec()));
        c.name.push(ByteArray::from(stats.name.as_bytes().to_vec()));
        c.pull_count.push(pulls);
        c.star_count.push(stars);
        match collaborators {
            Some(value) => {
                c.collaborator_count.push(value);
                c.collaborator_defined.push(1);
            }
            None => c.collaborator_defined.push(0),
        }
        self.rows += 1;
        if self.columns.len() >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.columns.len() == 0 {
            return Ok(());
        }
        let c = &self.columns;
        let mut group = self.file.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            match index {
                0 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.timestamp, None, None)?,
                1 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&c.namespace, None, None)?,
                2 => column
                    .typed::<ByteArrayType>()
                    .write_batch(&c.name, None, None)?,
                3 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.pull_count, None, None)?,
                4 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.star_count, None, None)?,
                _ => column.typed::<Int64Type>().write_batch(
                    &c.collaborator_count,
                    Some(&c.collaborator_defined),
                    None,
                )?,
            };
            column.close()?;
            index += 1;
        }
        group.close()?;
        self.columns.clear();
        Ok(())
    }

    /// Writes the last row group and the footer; the sink.
    pub fn finish(mut self) -> Result<W, ParquetError> {
        self.flush()?;
        Ok(self.file.into_inner()?)
    }
}

/// A Parquet file of the archive, read a row group at a time.
pub struct File {
    reader: SerializedFileReader<Bytes>,
    covered: Vec<String>,
}

impl File {
    /// Opens a file's bytes and reads its footer.
    pub fn open(body: Vec<u8>) -> Result<Self, ParquetError> {
        let reader = SerializedFileReader::new(Bytes::from(body))?;
        let metadata = reader.metadata().file_metadata();
        let columns: Vec<&str> = metadata
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name())
            .collect();
        let expected = [
            "timestamp",
            "namespace",
            "name",
            "pull_count",
            "star_count",
            "collaborator_count",
        ];
        if columns != expected {
            return Err(ParquetError::Shape(format!(
                "columns {columns:?}, expected {expected:?}"
            )));
        }
        let covered = metadata
            .key_value_metadata()
            .and_then(|entries| entries.iter().find(|e| e.key == COVERED_KEYS))
            .and_then(|entry| entry.value.as_deref())
            .map(|keys| {
                keys.lines()
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self { reader, covered })
    }

    /// The raw object keys the file was made from, sorted.
    pub fn covered(&self) -> &[String] {
        &self.covered
    }

    pub fn row_groups(&self) -> usize {
        self.reader.num_row_groups()
    }

    /// The rows of row group `index`, in file order: read a column at a
    /// time with the typed column readers (the record API builds a value
    /// per field and was slower than reading the raw objects).
    pub fn row_group(&self, index: usize) -> Result<Vec<Document>, ParquetError> {
        let group = self.reader.get_row_group(index)?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or_default();
        let shape = |what: &str| ParquetError::Shape(format!("{what}: not the expected type"));
        let longs = |column: usize, defined: Option<&mut Vec<i16>>| {
            let reader = group.get_column_reader(column)?;
            let mut reader = Int64Type::get_column_reader(reader)
                .ok_or_else(|| shape("a count or time column"))?;
            let mut values = Vec::with_capacity(rows);
            let mut levels = defined;
            loop {
                let (records, _, _) =
                    reader.read_records(rows, levels.as_deref_mut(), None, &mut values)?;
                if records == 0 {
                    break;
                }
            }
            Ok::<_, ParquetError>(values)
        };
        let texts = |column: usize| {
            let reader = group.get_column_reader(column)?;
            let mut reader =
                ByteArrayType::get_column_reader(reader).ok_or_else(|| shape("a text column"))?;
            let mut values: Vec<ByteArray> = Vec::with_capacity(rows);
            loop {
                let (records, _, _) = reader.read_records(rows, None, None, &mut values)?;
                if records == 0 {
                    break;
                }
            }
            values
                .into_iter()
                .map(|v| {
                    String::from_utf8(v.data().to_vec())
                        .map_err(|_| ParquetError::Shape("a name that is not UTF-8".into()))
                })
                .collect::<Result<Vec<String>, _>>()
        };
        let timestamps = longs(0, None)?;
        let namespaces = texts(1)?;
        let names = texts(2)?;
        let pulls = longs(3, None)?;
        let stars = longs(4, None)?;
        let mut defined = Vec::with_capacity(rows);
        let collaborators = longs(5, Some(&mut defined))?;
        if [
            namespaces.len(),
            names.len(),
            pulls.len(),
            stars.len(),
            defined.len(),
        ]
        .iter()
        .any(|&n| n != timestamps.len())
        {
            return Err(ParquetError::Shape("columns of different lengths".into()));
        }
        let count = |what: &str, value: i64| {
            u64::try_from(value)
                .map_err(|_| ParquetError::Shape(format!("{what} {value} is negative")))
        };
        let mut present = collaborators.into_iter();
        let mut documents = Vec::with_capacity(timestamps.len());
        for (row, ((namespace, name), micros)) in namespaces
            .into_iter()
            .zip(names)
            .zip(timestamps.iter().copied())
            .enumerate()
        {
            let timestamp = RunTime::from_unix_micros(micros)
                .ok_or_else(|| ParquetError::Shape(format!("timestamp {micros} out of range")))?;
            let collaborator_count = match defined[row] {
                0 => None,
                _ => Some(count(
                    "collaborator_count",
                    present
                        .next()
                        .ok_or_else(|| ParquetError::Shape("collaborator_count missing".into()))?,
                )?),
            };
            documents.push(Document {
                timestamp,
                stats: RepositoryStats {
                    namespace,
                    name,
                    pull_count: count("pull_count", pulls[row])?,
                    star_count: count("star_count", stars[row])?,
                    collaborator_count,
                },
            });
        }
        Ok(documents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(at: &str, name: &str, pulls: u64, collaborators: Option<u64>) -> Document {
        Document {
            timestamp: RunTime::parse(at).expect("time"),
            stats: RepositoryStats {
                namespace: "library".into(),
                name: name.into(),
                pull_count: pulls,
                star_count: 7,
                collaborator_count: collaborators,
            },
        }
    }

    #[test]
    fn a_file_reads_back_the_rows_it_was_given_with_its_covered_keys() {
        let documents: Vec<Document> = (0..(ROW_GROUP_ROWS + 10))
            .map(|n| {
                document(
                    "2026-12-03T10:35:00.25Z",
                    &format!("r{n:07}"),
                    2_244_658_322 + n as u64,
                    (n % 3 != 0).then_some(n as u64 % 5),
                )
            })
            .collect();
        let covered = vec![
            "archive/a.ndjson.gz".to_owned(),
            "archive/b.ndjson.gz".into(),
        ];
        let mut writer = Writer::new(Vec::new(), &covered).expect("writer");
        for d in &documents {
            writer.push(d).expect("push");
        }
        assert_eq!(writer.rows(), documents.len());
        let body = writer.finish().expect("finish");
        assert_eq!(&body[..4], b"PAR1");
        let file = File::open(body).expect("open");
        assert_eq!(file.covered(), covered);
        assert_eq!(file.row_groups(), 2, "row groups written as they fill");
        let mut read = Vec::new();
        for group in 0..file.row_groups() {
            read.extend(file.row_group(group).expect("rows"));
        }
        assert_eq!(read, documents);
    }

    #[test]
    fn a_time_finer_than_a_microsecond_or_a_huge_count_is_refused() {
        let mut writer = Writer::new(Vec::new(), &[]).expect("writer");
        let fine = document("2026-12-03T10:35:00.123456789Z", "httpd", 1, None);
        assert!(matches!(
            writer.push(&fine),
            Err(ParquetError::NotRepresentable { .. })
        ));
        let huge = document("2026-12-03T10:35:00Z", "httpd", u64::MAX, None);
        let error = writer.push(&huge).unwrap_err().to_string();
        assert!(
            error.contains("library/httpd@2026-12-03T10:35:00Z"),
            "{error}"
        );
        assert!(File::open(b"not parquet".to_vec()).is_err());
    }
}
