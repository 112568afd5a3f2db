// The command handlers behind execute(), one family per file (strings, lists, keys and server). Each
// is called with arguments whose count already satisfies the command's arity.
// Thread rules: as execute(): any worker thread, the store the only shared state.
#pragma once

#include "resp_commands.hpp"
#include "resp_reply.hpp"

namespace resp {
size_t command_count();  // resp_commands.cpp
}  // namespace resp

namespace resp::cmd {

struct Call {
    Args args;
    Store& store;
    Client& client;
    Reply& reply;
};

// resp_strings.cpp
void get(Call& c);
void set(Call& c);
void incr(Call& c);
void decr(Call& c);
void incrby(Call& c);
void decrby(Call& c);
void mget(Call& c);
void mset(Call& c);
// resp_lists.cpp
void lpush(Call& c);
void rpush(Call& c);
void lpop(Call& c);
void rpop(Call& c);
void lrange(Call& c);
void llen(Call& c);
// resp_keys.cpp
void del(Call& c);
void exists(Call& c);
void expire(Call& c);
void pexpire(Call& c);
void ttl(Call& c);
void pttl(Call& c);
void dbsize(Call& c);
void flushall(Call& c);
// resp_server.cpp
void ping(Call& c);
void echo(Call& c);
void info(Call& c);
void config(Call& c);
void select(Call& c);
void quit(Call& c);
void command(Call& c);
void client(Call& c);
void hello(Call& c);

}  // namespace resp::cmd
