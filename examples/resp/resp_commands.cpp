// Command dispatch: the table of names and arities, Redis's arity and unknown-command errors.
#include <algorithm>
#include <array>

#include "resp_handlers.hpp"

namespace resp {
namespace {

struct Command {
    std::string_view name;  // lower case
    int arity;              // as Redis counts it: n exactly n arguments (the name included), -n at least n
    void (*run)(cmd::Call&);
};

// Sorted by name, for a binary search.
constexpr std::array kCommands = {
    Command{"client", -2, cmd::client},
    Command{"command", -1, cmd::command},
    Command{"config", -2, cmd::config},
    Command{"dbsize", 1, cmd::dbsize},
    Command{"decr", 2, cmd::decr},
    Command{"decrby", 3, cmd::decrby},
    Command{"del", -2, cmd::del},
    Command{"echo", 2, cmd::echo},
    Command{"exists", -2, cmd::exists},
    Command{"expire", -3, cmd::expire},
    Command{"flushall", -1, cmd::flushall},
    Command{"flushdb", -1, cmd::flushall},
    Command{"get", 2, cmd::get},
    Command{"hello", -1, cmd::hello},
    Command{"incr", 2, cmd::incr},
    Command{"incrby", 3, cmd::incrby},
    Command{"info", -1, cmd::info},
    Command{"llen", 2, cmd::llen},
    Command{"lpop", -2, cmd::lpop},
    Command{"lpush", -3, cmd::lpush},
    Command{"lrange", 4, cmd::lrange},
    Command{"mget", -2, cmd::mget},
    Command{"mset", -3, cmd::mset},
    Command{"pexpire", -3, cmd::pexpire},
    Command{"ping", -1, cmd::ping},
    Command{"pttl", 2, cmd::pttl},
    Command{"quit", -1, cmd::quit},
    Command{"rpop", -2, cmd::rpop},
    Command{"rpush", -3, cmd::rpush},
    Command{"select", 2, cmd::select},
    Command{"set", -3, cmd::set},
    Command{"ttl", 2, cmd::ttl},
};

const Command* find_command(std::string_view name) {
    if (name.size() > 16) return nullptr;
    const std::string low = lower(name);
    auto it = std::lower_bound(kCommands.begin(), kCommands.end(), low,
                               [](const Command& c, const std::string& n) { return c.name < n; });
    return it != kCommands.end() && it->name == low ? &*it : nullptr;
}

// Redis prints arguments with %s: a NUL ends them.
std::string_view c_string(std::string_view s) { return s.substr(0, s.find('\0')); }

// "unknown command 'foo', with args beginning with: 'a' 'b' ": each argument quoted while the list is
// under 128 bytes, the last one cut to fit.
void unknown_command(Args args, Reply& reply) {
    std::string list;
    for (size_t i = 1; i < args.size() && list.size() < 128; ++i)
        list += "'" + std::string(c_string(args[i]).substr(0, 128 - list.size())) + "' ";
    reply.error("ERR unknown command '" + std::string(c_string(args[0]).substr(0, 128)) +
                "', with args beginning with: " + list);
}

}  // namespace

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return r;
}

bool equals_nocase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto low = [](char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch; };
               return low(x) == low(y);
           });
}

size_t command_count() { return kCommands.size(); }

void execute(Args args, Store& store, Client& client, std::string& out) {
    Reply reply(out);
    const Command* command = find_command(args[0]);
    if (command == nullptr) return unknown_command(args, reply);
    const auto n = static_cast<int>(std::min<size_t>(args.size(), 1 << 30));
    if ((command->arity > 0 && n != command->arity) || n < -command->arity)
        return reply.error("ERR wrong number of arguments for '" + std::string(command->name) + "' command");
    cmd::Call call{args, store, client, reply};
    command->run(call);
}

}  // namespace resp
