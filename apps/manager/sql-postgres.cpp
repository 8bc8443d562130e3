/* SqlConnection over PostgreSQL (libpq): one connection, opened lazily and
 * again after it drops (at most one attempt a second, so a database
 * outage costs each request one quick failure, not a stack of connect
 * timeouts). Every call waits at most the store timeout on the client side
 * (the query is then cancelled and the connection dropped) and the server
 * enforces the same bound as statement_timeout. A connection lost inside a
 * transaction is not silently replaced: the transaction fails. */
#include "sql.h"

#include <glib.h>
#include <libpq-fe.h>
#include <poll.h>

namespace xdn::manager {

namespace {

constexpr unsigned kInt8Oid = 20, kFloat8Oid = 701, kTextOid = 25;
constexpr gint64 kReconnectGapUs = 1000 * 1000;

class PgConnection : public SqlConnection {
public:
  PgConnection (const std::string &url, int64_t timeoutMs) : url_ (url), timeoutMs_ (timeoutMs)
  {
    char *err = nullptr;
    PQconninfoOption *options = PQconninfoParse (url.c_str (), &err);
    if (!options) {
      std::string msg = err ? err : "cannot parse";
      PQfreemem (err);
      throw StoreError ("invalid PostgreSQL URL: " + msg);
    }
    for (PQconninfoOption *o = options; o->keyword; o++) {
      std::string k = o->keyword;
      if (!o->val)
        continue;
      if (k == "host") host_ = o->val;
      else if (k == "port") port_ = o->val;
      else if (k == "dbname") dbname_ = o->val;
      else if (k == "user") user_ = o->val;
    }
    PQconninfoFree (options);
  }

  ~PgConnection () override { drop (); }

  Dialect dialect () const override { return Dialect::Postgres; }

  std::string describe () const override
  {
    return "postgresql://" + (user_.empty () ? "" : user_ + "@") + host_ +
        (port_.empty () ? "" : ":" + port_) + "/" + dbname_;
  }

  void execScript (const std::string &sql) override
  {
    connectIfNeeded ();
    if (!PQsendQuery (conn_, sql.c_str ()))
      fail ("cannot send");
    collect (sql);
  }

  SqlRows query (const std::string &sql, const std::vector<SqlValue> &params) override
  {
    /* A connection that dropped while idle (server restarted, idle
     * connection cut) is replaced once, transparently: outside a
     * transaction the failed statement is a read or BEGIN. */
    bool idle = conn_ && !inTransaction_;
    lost_ = false;
    try {
      return queryOnce (sql, params);
    } catch (const StoreError &) {
      if (!idle || !lost_ || inTransaction_)
        throw;
      lastAttempt_ = 0;
      return queryOnce (sql, params);
    }
  }

private:
  SqlRows queryOnce (const std::string &sql, const std::vector<SqlValue> &params)
  {
    connectIfNeeded ();
    std::vector<std::string> text (params.size ());
    std::vector<const char *> values (params.size ());
    std::vector<unsigned> types (params.size ());
    for (size_t i = 0; i < params.size (); i++) {
      const SqlValue &v = params[i];
      switch (v.kind) {
        case SqlValue::Kind::Null: values[i] = nullptr; types[i] = 0; continue;
        case SqlValue::Kind::Int: text[i] = std::to_string (v.i); types[i] = kInt8Oid; break;
        case SqlValue::Kind::Real: {
          char buf[G_ASCII_DTOSTR_BUF_SIZE];
          text[i] = g_ascii_dtostr (buf, sizeof buf, v.d);
          types[i] = kFloat8Oid;
          break;
        }
        case SqlValue::Kind::Text: text[i] = v.s; types[i] = kTextOid; break;
      }
      values[i] = text[i].c_str ();
    }
    if (!PQsendQueryParams (conn_, sql.c_str (), static_cast<int> (params.size ()),
            types.data (), values.data (), nullptr, nullptr, 0))
      fail ("cannot send");
    return collect (sql);
  }

public:
  void beginWrite (int64_t lockKey) override
  {
    query ("BEGIN", {});
    inTransaction_ = true;
    query ("SELECT pg_advisory_xact_lock($1)", {lockKey});
  }

  void commit () override
  {
    query ("COMMIT", {});
    inTransaction_ = false;
  }

  void rollback () noexcept override
  {
    bool was = inTransaction_;
    inTransaction_ = false;
    if (!was || !conn_ || PQstatus (conn_) != CONNECTION_OK ||
        PQtransactionStatus (conn_) == PQTRANS_IDLE)
      return;
    try {
      query ("ROLLBACK", {});
    } catch (const StoreError &) {
      drop ();
    }
  }

  int64_t nowMs () override
  {
    SqlRows r = query ("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)", {});
    return r.integer (0, 0);
  }

private:
  void drop ()
  {
    if (conn_)
      PQfinish (conn_);
    conn_ = nullptr;
  }

  [[noreturn]] void fail (const std::string &what)
  {
    std::string msg = conn_ ? PQerrorMessage (conn_) : "";
    while (!msg.empty () && (msg.back () == '\n' || msg.back () == ' '))
      msg.pop_back ();
    if (conn_ && PQstatus (conn_) != CONNECTION_OK) {
      drop ();
      lost_ = true;
    }
    throw StoreError ("PostgreSQL: " + what + (msg.empty () ? "" : ": " + msg));
  }

  /* Waits for @events on the connection's socket until @deadline
   * (monotonic us); false on timeout. */
  bool wait (short events, gint64 deadline)
  {
    gint64 remaining = deadline - g_get_monotonic_time ();
    if (remaining <= 0)
      return false;
    struct pollfd fd = {PQsocket (conn_), events, 0};
    int rc = poll (&fd, 1, static_cast<int> ((remaining + 999) / 1000));
    return rc != 0;  /* an error also lets libpq report it */
  }

  void connectIfNeeded ()
  {
    if (conn_ && PQstatus (conn_) == CONNECTION_OK)
      return;
    if (inTransaction_)
      throw StoreError ("PostgreSQL: connection lost inside a transaction");
    drop ();
    gint64 now = g_get_monotonic_time ();
    if (lastAttempt_ != 0 && now - lastAttempt_ < kReconnectGapUs)
      throw StoreError ("PostgreSQL unreachable: " + lastError_);
    lastAttempt_ = now;

    const char *keywords[] = {"application_name", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "dbname", nullptr};
    const char *values[] = {"xdn-manager", "5", "2", "3", url_.c_str (), nullptr};
    conn_ = PQconnectStartParams (keywords, values, 1);
    if (!conn_ || PQstatus (conn_) == CONNECTION_BAD) {
      lastError_ = conn_ ? PQerrorMessage (conn_) : "out of memory";
      drop ();
      throw StoreError ("PostgreSQL: cannot connect: " + lastError_);
    }
    gint64 deadline = now + timeoutMs_ * 1000;
    for (;;) {
      PostgresPollingStatusType st = PQconnectPoll (conn_);
      if (st == PGRES_POLLING_OK)
        break;
      bool ready = true;
      if (st == PGRES_POLLING_READING)
        ready = wait (POLLIN, deadline);
      else if (st == PGRES_POLLING_WRITING)
        ready = wait (POLLOUT, deadline);
      if (st == PGRES_POLLING_FAILED || !ready) {
        lastError_ = st == PGRES_POLLING_FAILED ? PQerrorMessage (conn_) : "connect timed out";
        while (!lastError_.empty () && lastError_.back () == '\n')
          lastError_.pop_back ();
        drop ();
        throw StoreError ("PostgreSQL: cannot connect: " + lastError_);
      }
    }
    lastError_.clear ();
    /* The server side of the bound, and no session stuck in a transaction. */
    std::string setup = "SET statement_timeout = " + std::to_string (timeoutMs_) +
        "; SET idle_in_transaction_session_timeout = " + std::to_string (timeoutMs_ * 5) +
        "; SET client_min_messages = warning";
    execScript (setup);
  }

  SqlRows collect (const std::string &sql)
  {
    gint64 deadline = g_get_monotonic_time () + (timeoutMs_ + 1000) * 1000;
    SqlRows rows;
    std::string error;
    for (;;) {
      while (PQisBusy (conn_)) {
        if (!wait (POLLIN, deadline)) {
          /* No PQcancel: it has no timeout of its own and would wait on a
           * server that does not answer. The server's statement_timeout
           * ends the statement; the connection is dropped here. */
          drop ();
          throw StoreError ("PostgreSQL: no answer within " + std::to_string (timeoutMs_) +
              " ms; connection dropped");
        }
        if (!PQconsumeInput (conn_))
          fail ("connection lost");
      }
      PGresult *res = PQgetResult (conn_);
      if (!res)
        break;
      ExecStatusType st = PQresultStatus (res);
      if (st == PGRES_TUPLES_OK) {
        int n = PQntuples (res), cols = PQnfields (res);
        for (int r = 0; r < n; r++) {
          SqlRows::Row row;
          for (int c = 0; c < cols; c++) {
            if (PQgetisnull (res, r, c))
              row.emplace_back ();
            else
              row.emplace_back (std::string (PQgetvalue (res, r, c), PQgetlength (res, r, c)));
          }
          rows.add (std::move (row));
        }
      } else if (st != PGRES_COMMAND_OK && error.empty ()) {
        error = PQresultErrorMessage (res);
        while (!error.empty () && error.back () == '\n')
          error.pop_back ();
      }
      PQclear (res);
    }
    if (PQstatus (conn_) != CONNECTION_OK)
      fail ("connection lost");
    if (!error.empty ())
      throw StoreError ("PostgreSQL: " + error + " in: " + sql.substr (0, 80));
    return rows;
  }

  std::string url_, host_, port_, dbname_, user_;
  int64_t timeoutMs_;
  PGconn *conn_ = nullptr;
  bool inTransaction_ = false;
  bool lost_ = false;  /* the last failure was the connection dropping */
  gint64 lastAttempt_ = 0;  /* monotonic us of the last connect attempt */
  std::string lastError_;
};

}  // namespace

std::unique_ptr<SqlConnection>
openPostgres (const std::string &url, int64_t timeoutMs)
{
  return std::make_unique<PgConnection> (url, timeoutMs);
}

}  // namespace xdn::manager
