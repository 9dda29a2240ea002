#include "cluster/pq.hpp"

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

} // namespace imeilock::cluster
