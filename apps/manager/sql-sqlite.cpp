/* SqlConnection over SQLite: one connection, WAL journal (readers do not
 * block the writer), a busy timeout so that a second manager process on the
 * same file waits for the write lock instead of failing, prepared
 * statements cached by text. */
#include "sql.h"

#include <glib.h>
#include <sqlite3.h>

#include <map>

namespace xdn::manager {

namespace {

/* `$N` -> `?N`: SQLite's numbered parameters. */
std::string
toSqliteParams (const std::string &sql)
{
  std::string out = sql;
  for (auto &c : out)
    if (c == '$')
      c = '?';
  return out;
}

class SqliteConnection : public SqlConnection {
public:
  SqliteConnection (const std::string &path, int64_t timeoutMs) : path_ (path)
  {
    int rc = sqlite3_open_v2 (path.c_str (), &db_,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg (db_) : sqlite3_errstr (rc);
      sqlite3_close (db_);
      db_ = nullptr;
      throw StoreError ("cannot open SQLite database '" + path + "': " + msg);
    }
    sqlite3_busy_timeout (db_, static_cast<int> (timeoutMs));
    sqlite3_extended_result_codes (db_, 1);
    try {
      SqlRows mode = query ("PRAGMA journal_mode=WAL", {});
      if (mode.empty () || g_ascii_strcasecmp (mode.text (0, 0).c_str (), "wal") != 0)
        throw StoreError ("SQLite database '" + path + "' cannot use the WAL journal");
      execScript ("PRAGMA synchronous=NORMAL");
    } catch (...) {
      close ();
      throw;
    }
  }

  ~SqliteConnection () override { close (); }

  Dialect dialect () const override { return Dialect::Sqlite; }
  std::string describe () const override { return "sqlite:" + path_; }

  void execScript (const std::string &sql) override
  {
    char *err = nullptr;
    if (sqlite3_exec (db_, sql.c_str (), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg (db_);
      sqlite3_free (err);
      throw StoreError ("SQLite: " + msg);
    }
  }

  SqlRows query (const std::string &sql, const std::vector<SqlValue> &params) override
  {
    sqlite3_stmt *stmt = prepare (sql);
    /* Unbinds and resets whatever happens below. */
    struct Reset {
      sqlite3_stmt *s;
      ~Reset () { sqlite3_reset (s); sqlite3_clear_bindings (s); }
    } reset{stmt};

    for (size_t i = 0; i < params.size (); i++) {
      const SqlValue &v = params[i];
      int index = static_cast<int> (i + 1);
      int rc = SQLITE_OK;
      switch (v.kind) {
        case SqlValue::Kind::Null: rc = sqlite3_bind_null (stmt, index); break;
        case SqlValue::Kind::Int: rc = sqlite3_bind_int64 (stmt, index, v.i); break;
        case SqlValue::Kind::Real: rc = sqlite3_bind_double (stmt, index, v.d); break;
        case SqlValue::Kind::Text:
          rc = sqlite3_bind_text (stmt, index, v.s.data (), static_cast<int> (v.s.size ()),
              SQLITE_TRANSIENT);
          break;
      }
      if (rc != SQLITE_OK)
        throw StoreError (std::string ("SQLite bind: ") + sqlite3_errmsg (db_));
    }

    SqlRows rows;
    int columns = sqlite3_column_count (stmt);
    for (;;) {
      int rc = sqlite3_step (stmt);
      if (rc == SQLITE_DONE)
        break;
      if (rc != SQLITE_ROW)
        throw StoreError (std::string ("SQLite: ") + sqlite3_errmsg (db_));
      SqlRows::Row row;
      for (int c = 0; c < columns; c++) {
        if (sqlite3_column_type (stmt, c) == SQLITE_NULL) {
          row.emplace_back ();
        } else {
          const unsigned char *text = sqlite3_column_text (stmt, c);
          row.emplace_back (std::string (reinterpret_cast<const char *> (text),
              sqlite3_column_bytes (stmt, c)));
        }
      }
      rows.add (std::move (row));
    }
    return rows;
  }

  void beginWrite (int64_t) override { execScript ("BEGIN IMMEDIATE"); }
  void commit () override { execScript ("COMMIT"); }
  void rollback () noexcept override
  {
    if (!sqlite3_get_autocommit (db_))
      sqlite3_exec (db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  int64_t nowMs () override { return clock_ ? clock_ () : g_get_real_time () / 1000; }

  std::function<int64_t ()> clock_;

private:
  void close ()
  {
    for (auto &entry : statements_)
      sqlite3_finalize (entry.second);
    statements_.clear ();
    sqlite3_close (db_);
    db_ = nullptr;
  }

  sqlite3_stmt *prepare (const std::string &sql)
  {
    auto it = statements_.find (sql);
    if (it != statements_.end ())
      return it->second;
    sqlite3_stmt *stmt = nullptr;
    std::string text = toSqliteParams (sql);
    if (sqlite3_prepare_v2 (db_, text.c_str (), -1, &stmt, nullptr) != SQLITE_OK)
      throw StoreError (std::string ("SQLite prepare: ") + sqlite3_errmsg (db_) + " in: " + sql);
    statements_.emplace (sql, stmt);
    return stmt;
  }

  std::string path_;
  sqlite3 *db_ = nullptr;
  std::map<std::string, sqlite3_stmt *> statements_;
};

}  // namespace

std::unique_ptr<SqlConnection>
openSqlite (const std::string &path, int64_t timeoutMs)
{
  return std::make_unique<SqliteConnection> (path, timeoutMs);
}

void
setSqliteClock (SqlConnection *connection, std::function<int64_t ()> clock)
{
  if (auto *c = dynamic_cast<SqliteConnection *> (connection))
    c->clock_ = std::move (clock);
}

}  // namespace xdn::manager
