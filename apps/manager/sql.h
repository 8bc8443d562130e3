/* The small SQL surface the store needs, over SQLite or PostgreSQL: queries
 * with typed parameters written `$1, $2, ...`, rows as text, a serialised
 * write transaction, and the database's clock. Calls throw StoreError; the
 * store catches it at its own boundary. */
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace xdn::manager {

class Store;
struct StoreSettings;

class StoreError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct SqlValue {
  enum class Kind { Null, Int, Real, Text } kind = Kind::Null;
  int64_t i = 0;
  double d = 0;
  std::string s;

  SqlValue () = default;
  SqlValue (int64_t v) : kind (Kind::Int), i (v) {}
  SqlValue (int v) : kind (Kind::Int), i (v) {}
  SqlValue (bool v) : kind (Kind::Int), i (v ? 1 : 0) {}
  SqlValue (double v) : kind (Kind::Real), d (v) {}
  SqlValue (std::string v) : kind (Kind::Text), s (std::move (v)) {}
  SqlValue (const char *v) : kind (Kind::Text), s (v) {}
};

class SqlRows {
public:
  using Row = std::vector<std::optional<std::string>>;

  size_t size () const { return rows_.size (); }
  bool empty () const { return rows_.empty (); }
  bool null (size_t r, size_t c) const { return !rows_.at (r).at (c).has_value (); }
  std::string text (size_t r, size_t c) const;
  int64_t integer (size_t r, size_t c) const;
  double real (size_t r, size_t c) const;
  void add (Row row) { rows_.push_back (std::move (row)); }

private:
  std::vector<Row> rows_;
};

class SqlConnection {
public:
  enum class Dialect { Sqlite, Postgres };

  virtual ~SqlConnection () = default;
  virtual Dialect dialect () const = 0;
  virtual std::string describe () const = 0;
  /* Statements separated by ';', no parameters. */
  virtual void execScript (const std::string &sql) = 0;
  virtual SqlRows query (const std::string &sql, const std::vector<SqlValue> &params = {}) = 0;
  /* Starts a transaction that no other writer of the database runs beside:
   * @lockKey names the lock (PostgreSQL advisory lock; SQLite has one). */
  virtual void beginWrite (int64_t lockKey) = 0;
  virtual void commit () = 0;
  virtual void rollback () noexcept = 0;
  /* The database's clock in ms since the epoch. */
  virtual int64_t nowMs () = 0;
};

/* SQLite file (WAL, busy timeout = @timeoutMs). Throws StoreError. */
std::unique_ptr<SqlConnection> openSqlite (const std::string &path, int64_t timeoutMs);
/* Sets the clock of a SQLite connection (tests); nullptr restores the system's. */
void setSqliteClock (SqlConnection *connection, std::function<int64_t ()> clock);
/* PostgreSQL (libpq). Connects lazily and again after a drop; every call is
 * bounded by @timeoutMs. Throws StoreError only for a malformed @url. */
std::unique_ptr<SqlConnection> openPostgres (const std::string &url, int64_t timeoutMs);

/* The Store over either connection (sql-store.cpp). */
std::unique_ptr<Store> makeSqlStore (std::unique_ptr<SqlConnection> db, const StoreSettings &settings);

}  // namespace xdn::manager
