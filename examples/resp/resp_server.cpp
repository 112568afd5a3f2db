// Connection and server commands: PING, ECHO, INFO, CONFIG GET, SELECT, QUIT, COMMAND, CLIENT, HELLO.
// Enough of each for redis-cli and redis-benchmark, which ask for them when they start.
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "resp_handlers.hpp"
#include "resp_parser.hpp"

namespace resp::cmd {
namespace {

// The version clients are told: they pick features by it, and this example answers as 7.0 does.
constexpr std::string_view kRedisVersion = "7.0.0";

std::string server_section(Store& store) {
    std::string s = "# Server\r\n";
    s += "redis_version:" + std::string(kRedisVersion) + "\r\n";
    s += "redis_mode:standalone\r\n";
    s += "server_name:kqresp\r\n";
    s += "os:Linux\r\n";
    s += "arch_bits:" + std::to_string(sizeof(void*) * 8) + "\r\n";
    s += "multiplexing_api:kqserver\r\n";
    s += "process_id:" + std::to_string(::getpid()) + "\r\n";
    s += "uptime_in_seconds:" + std::to_string((store.now() - store.started()) / 1000) + "\r\n";
    return s;
}

std::string keyspace_section(Store& store) {
    const size_t keys = store.size();
    std::string s = "# Keyspace\r\n";
    if (keys > 0) s += "db0:keys=" + std::to_string(keys) + ",expires=0,avg_ttl=0\r\n";
    return s;
}

}  // namespace

void ping(Call& c) {
    if (c.args.size() > 2) return c.reply.error("ERR wrong number of arguments for 'ping' command");
    if (c.args.size() == 2) return c.reply.bulk(c.args[1]);
    c.reply.simple("PONG");
}

void echo(Call& c) { c.reply.bulk(c.args[1]); }

// INFO [section ...]: "server" and "keyspace" exist; no section, "all", "default" or "everything" gives
// both, an unknown one nothing (as in Redis).
void info(Call& c) {
    bool server = c.args.size() == 1, keyspace = c.args.size() == 1;
    for (size_t i = 1; i < c.args.size(); ++i) {
        const std::string s = lower(c.args[i]);
        const bool all = s == "all" || s == "default" || s == "everything";
        server |= all || s == "server";
        keyspace |= all || s == "keyspace";
    }
    std::string text;
    if (server) text += server_section(c.store);
    if (server && keyspace) text += "\r\n";
    if (keyspace) text += keyspace_section(c.store);
    c.reply.bulk(text);
}

// CONFIG GET param...: "save" (no snapshots) and "appendonly" (no), which redis-benchmark asks for;
// any other parameter is unknown, and so left out of the reply.
void config(Call& c) {
    if (!equals_nocase(c.args[1], "get"))
        return c.reply.error("ERR unknown subcommand '" + std::string(c.args[1].substr(0, 128)) +
                             "'. Try CONFIG HELP.");
    if (c.args.size() < 3) return c.reply.error("ERR wrong number of arguments for 'config|get' command");
    std::vector<std::pair<std::string_view, std::string_view>> found;
    for (size_t i = 2; i < c.args.size(); ++i) {
        if (equals_nocase(c.args[i], "save")) found.emplace_back(c.args[i], "");
        else if (equals_nocase(c.args[i], "appendonly")) found.emplace_back(c.args[i], "no");
    }
    c.reply.array(found.size() * 2);
    for (auto [name, value] : found) {
        c.reply.bulk(name);
        c.reply.bulk(value);
    }
}

// One database: SELECT 0 only.
void select(Call& c) {
    int64_t db = 0;
    if (!parse_int64(c.args[1], db)) return c.reply.error(kNotInteger);
    if (db != 0) return c.reply.error("ERR DB index is out of range");
    c.reply.ok();
}

void quit(Call& c) {
    c.client.quit = true;
    c.reply.ok();
}

// COMMAND, COMMAND DOCS, COMMAND INFO: an empty array (clients then use their built-in tables);
// COMMAND COUNT: how many commands there are.
void command(Call& c) {
    if (c.args.size() == 1) return c.reply.array(0);
    const std::string sub = lower(c.args[1]);
    if (sub == "count" && c.args.size() == 2) return c.reply.integer(static_cast<int64_t>(command_count()));
    if (sub == "docs" || sub == "info") return c.reply.array(0);
    if (sub == "count") return c.reply.error("ERR wrong number of arguments for 'command|count' command");
    c.reply.error("ERR unknown subcommand '" + std::string(c.args[1].substr(0, 128)) + "'. Try COMMAND HELP.");
}

// CLIENT SETNAME, SETINFO (accepted, not kept), GETNAME (none), ID.
void client(Call& c) {
    const std::string sub = lower(c.args[1]);
    if (sub == "id" && c.args.size() == 2) return c.reply.integer(static_cast<int64_t>(c.client.id));
    if (sub == "getname" && c.args.size() == 2) return c.reply.null();
    if (sub == "setname" && c.args.size() == 3) return c.reply.ok();
    if (sub == "setinfo" && c.args.size() == 4) return c.reply.ok();
    if (sub == "id" || sub == "getname" || sub == "setname" || sub == "setinfo")
        return c.reply.error("ERR wrong number of arguments for 'client|" + sub + "' command");
    c.reply.error("ERR unknown subcommand '" + std::string(c.args[1].substr(0, 128)) + "'. Try CLIENT HELP.");
}

// HELLO [2]: RESP2 only; RESP3 is refused as Redis refuses a version it does not speak.
void hello(Call& c) {
    if (c.args.size() >= 2) {
        int64_t version = 0;
        if (!parse_int64(c.args[1], version))
            return c.reply.error("ERR Protocol version is not an integer or out of range");
        if (version != 2) return c.reply.error("NOPROTO unsupported protocol version");
        if (c.args.size() > 2)
            return c.reply.error("ERR Syntax error in HELLO option '" + std::string(c.args[2].substr(0, 128)) + "'");
    }
    c.reply.array(14);
    c.reply.bulk("server");
    c.reply.bulk("redis");
    c.reply.bulk("version");
    c.reply.bulk(kRedisVersion);
    c.reply.bulk("proto");
    c.reply.integer(2);
    c.reply.bulk("id");
    c.reply.integer(static_cast<int64_t>(c.client.id));
    c.reply.bulk("mode");
    c.reply.bulk("standalone");
    c.reply.bulk("role");
    c.reply.bulk("master");
    c.reply.bulk("modules");
    c.reply.array(0);
}

}  // namespace resp::cmd
