#include "cluster/pq.hpp"

#include "common/log.hpp"

#include <algorithm>
#include <cstring>

namespace imeilock::cluster {

pg_conn* connect(const std::string& conninfo) {
  // Defaults first; with expand_dbname the connection string overrides them.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"5", "imeilockd", conninfo.c_str(), nullptr};
  return PQconnectdbParams(keys, values, 1);
}

std::string one_line(std::string message) {
  for (auto& c : message)
    if (c == '\n' || c == '\t')
      c = ' ';
  while (!message.empty() && message.back() == ' ')
    message.pop_back();
  return message;
}

error database_error(pg_conn* conn, const PGresult* r, std::string_view what) {
  std::string message = r ? PQresultErrorMessage(r) : "";
  if (message.empty())
    message = PQerrorMessage(conn);
  return error{ec::database, std::string{what} + ": " + one_line(std::move(message))};
}

expected<result_ptr> run(pg_conn* conn, std::string_view what, const char* sql,
                         const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params)
    values.push_back(p.c_str());
  result_ptr r{PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(),
                            nullptr, nullptr, 0)};
  auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
    return database_error(conn, r.get(), what);
  return r;
}

expected<void> commit(pg_conn* conn, std::string_view what) {
  auto r = run(conn, what, "COMMIT");
  if (!r)
    return r.error();
  if (std::strcmp(PQcmdStatus(r->get()), "COMMIT") != 0)
    return error{ec::database, std::string{what} + ": the transaction was rolled back"};
  return {};
}

void rollback(pg_conn* conn) {
  result_ptr r{PQexec(conn, "ROLLBACK")};
}

// -- reconnecting_connection -----------------------------------------------------------

reconnecting_connection::reconnecting_connection(std::string conninfo,
                                                 std::chrono::milliseconds first_retry,
                                                 log_events events) :
    conninfo_(std::move(conninfo)),
    first_retry_(first_retry),
    retry_(first_retry),
    events_(std::move(events)) {}

reconnecting_connection::~reconnecting_connection() {
  close();
}

void reconnecting_connection::close() {
  if (conn_)
    PQfinish(conn_);
  conn_ = nullptr;
}

pg_conn* reconnecting_connection::get() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK)
    return conn_;
  auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_)
    return nullptr;
  close();
  conn_ = connect(conninfo_);
  if (PQstatus(conn_) == CONNECTION_OK) {
    if (said_disconnected_)
      log::notice(events_.event + "_connected", {{"node", events_.node_id}});
    said_disconnected_ = false;
    retry_ = first_retry_;
    return conn_;
  }
  if (!said_disconnected_)
    log::warning(events_.event + "_disconnected", {{"node", events_.node_id},
                                                   {"error", connection_error(conn_)},
                                                   {"action", events_.action}});
  said_disconnected_ = true;
  close();
  next_attempt_ = now + retry_;
  retry_ = std::min<std::chrono::milliseconds>(retry_ * 2, std::chrono::seconds{5});
  return nullptr;
}

void reconnecting_connection::drop_if_broken() {
  if (conn_ && PQstatus(conn_) != CONNECTION_OK)
    close();
}

} // namespace imeilock::cluster
