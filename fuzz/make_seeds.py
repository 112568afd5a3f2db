#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/http and fuzz/corpus/connection (input formats: the first
comment of fuzz_http.cpp and fuzz_connection.cpp). Run it after changing a format or to add seeds."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def http_seed(payload, preset=0, timeout=False, splits=()):
    """Byte 0: preset (bits 0-1), end with the request time-out (bit 2), number of split bytes (bits 4-7)."""
    assert len(splits) < 16
    head = bytes([preset | (4 if timeout else 0) | (len(splits) << 4)]) + bytes(splits)
    return head + payload.encode("latin-1")


def req(line, *headers, body=""):
    return line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n" + body


GET = req("GET / HTTP/1.1", "Host: localhost")
HTTP = {
    "get_root": http_seed(GET),
    "get_no_host": http_seed(req("GET / HTTP/1.1")),
    "get_bytes_10": http_seed(req("GET /bytes/10 HTTP/1.1", "Host: a")),
    "get_bytes_0": http_seed(req("GET /bytes/0 HTTP/1.1", "Host: a")),
    "get_bytes_too_big": http_seed(req("GET /bytes/1048577 HTTP/1.1", "Host: a")),
    "get_bytes_overflow": http_seed(req("GET /bytes/99999999999999999999999 HTTP/1.1")),
    "get_bytes_small_route": http_seed(req("GET /bytes/5000 HTTP/1.1"), preset=1),
    "get_bytes_not_number": http_seed(req("GET /bytes/12ab HTTP/1.1", "Host: a")),
    "get_not_found": http_seed(req("GET /nothing/here?q=1 HTTP/1.1", "Host: a")),
    "get_absolute_uri": http_seed(req("GET http://localhost/ HTTP/1.1")),
    "head_root": http_seed(req("HEAD / HTTP/1.1", "Host: a")),
    "head_bytes": http_seed(req("HEAD /bytes/100 HTTP/1.1", "Host: a")),
    "head_bytes_too_big": http_seed(req("HEAD /bytes/1048577 HTTP/1.1", "Host: a")),
    "head_not_found": http_seed(req("HEAD /x HTTP/1.1")),
    "post_content_length": http_seed(req("POST /form HTTP/1.1", "Host: a", "Content-Length: 11", body="hello world")),
    "post_content_length_split": http_seed(
        req("POST / HTTP/1.1", "Content-Length: 11", body="hello world"), splits=(40, 200)),
    "post_chunked": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                  body="5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")),
    "post_chunked_split": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                        body="5\r\nhello\r\n0\r\n\r\n"), splits=(10, 60, 70, 90)),
    "post_chunked_trailer": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                          body="3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")),
    "put_then_get": http_seed(req("PUT /k HTTP/1.1", "Content-Length: 3", body="abc") + GET),
    "delete": http_seed(req("DELETE /k HTTP/1.1")),
    "options_star": http_seed(req("OPTIONS * HTTP/1.1")),
    "pipelined_gets": http_seed(GET * 3),
    "pipelined_mixed": http_seed(GET + req("HEAD / HTTP/1.1") + req("POST / HTTP/1.1", "Content-Length: 2", body="hi")
                                 + req("GET /bytes/3 HTTP/1.1")),
    "pipelined_split": http_seed(GET + req("HEAD /bytes/7 HTTP/1.1") + GET, splits=(30, 31, 100, 180)),
    "pipelined_many_splits": http_seed(GET * 4, splits=tuple(range(8, 248, 16))),
    "http10": http_seed(req("GET / HTTP/1.0")),
    "http10_keep_alive": http_seed(req("GET / HTTP/1.0", "Connection: keep-alive") + req("GET / HTTP/1.0")),
    "connection_close_then_more": http_seed(req("GET / HTTP/1.1", "Connection: close") + GET),
    "leading_crlf": http_seed("\r\n\r\n" + GET),
    "bare_lf": http_seed("GET / HTTP/1.1\nHost: a\n\n"),
    "upgrade_without_body": http_seed(req("GET / HTTP/1.1", "Connection: Upgrade", "Upgrade: websocket") + "rest"),
    "connect_method": http_seed(req("CONNECT example.com:443 HTTP/1.1") + "tunnel"),
    "bad_method": http_seed(req("G@T / HTTP/1.1")),
    "bad_version": http_seed(req("GET / HTTP/9.x")),
    "bad_header_name": http_seed(req("GET / HTTP/1.1", "Bad Header: x")),
    "bad_chunk_size": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: chunked", body="zz\r\nabc\r\n")),
    "length_and_chunked": http_seed(req("POST / HTTP/1.1", "Content-Length: 3", "Transfer-Encoding: chunked",
                                        body="3\r\nabc\r\n0\r\n\r\n")),
    "negative_length": http_seed(req("POST / HTTP/1.1", "Content-Length: -1")),
    "duplicate_length": http_seed(req("POST / HTTP/1.1", "Content-Length: 1", "Content-Length: 2", body="ab")),
    "oversized_header": http_seed(req("GET / HTTP/1.1", "X-Big: " + "a" * 9000)),
    "oversized_header_small_limit": http_seed(req("GET / HTTP/1.1", *("X-H%d: value" % i for i in range(20))), preset=1),
    "oversized_url_tiny_limit": http_seed(req("GET /" + "u" * 80 + " HTTP/1.1"), preset=2),
    "oversized_body_length": http_seed(req("POST / HTTP/1.1", "Content-Length: 100", body="b" * 100), preset=1),
    "oversized_body_chunked": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                            body="40\r\n" + "c" * 64 + "\r\n40\r\n" + "c" * 64 + "\r\n0\r\n\r\n"), preset=1),
    "any_body_too_big": http_seed(req("POST / HTTP/1.1", "Content-Length: 1", body="x"), preset=3),
    "incomplete_head_timeout": http_seed("GET / HTTP/1.1\r\nHost: a\r\n", timeout=True),
    "incomplete_body_timeout": http_seed(req("POST / HTTP/1.1", "Content-Length: 10", body="abc"), timeout=True),
    "incomplete_at_eof": http_seed(GET + "GET /by"),
    # the simple-request fast path (worker/src/http_simple.hpp) and where it hands over to http-parser
    "simple_connection_tokens": http_seed(req("GET / HTTP/1.1", "connection:CLOSE") + GET),
    "simple_http10_keep_alive_head": http_seed(req("HEAD /bytes/2?x=%20 HTTP/1.0", "Connection:  Keep-Alive") + GET),
    "simple_then_chunked": http_seed(GET + req("POST / HTTP/1.1", "Transfer-Encoding: chunked", body="0\r\n\r\n")
                                     + GET, splits=(20, 120)),
    "simple_name_prefixes": http_seed(req("GET / HTTP/1.1", "Transfer-Encodingx: a", "Upgrade-Insecure-Requests: 1",
                                          "Content-Lengthy: 2", "Connections: close")),
    "simple_at_head_limit": http_seed(req("GET / HTTP/1.1", *("X-H%d: v" % i for i in range(18))), preset=1),
}

# fuzz_connection: an options byte (bit 0 idle time-out, 1 request time-out, 2 short linger, 3 read
# before registering), then [op][arg] pairs; op bits 0-3 action, bits 4-5 client slot.
(CONNECT, SEND, RECV, SHUT, CLOSE, RESET, FLOOD, PAUSE, CLOSE_BYTE, NEWLINE, DRAIN, STOP_NOW,
 WAIT) = range(13)
IDLE, REQUEST, SHORT_LINGER, READ_FIRST = 1, 2, 4, 8


def ops(*pairs, options=READ_FIRST):
    return bytes([options]) + bytes(b for slot, action, arg in pairs for b in ((slot << 4) | action, arg))


CONNECTION = {
    "echo_round_trip": ops((0, CONNECT, 0), (0, SEND, 10), (0, PAUSE, 1), (0, RECV, 10), (0, SHUT, 0)),
    "pipelined_sends": ops((0, CONNECT, 0), (0, SEND, 3), (0, SEND, 200), (0, SEND, 50), (0, RECV, 255), (0, RECV, 255)),
    "backpressure_then_drain": ops((0, CONNECT, 0), (0, FLOOD, 40), (0, PAUSE, 3), (0, FLOOD, 40), (0, RECV, 255),
                                   (0, RECV, 255), (0, SEND, 20)),
    "backpressure_then_half_close": ops((0, CONNECT, 0), (0, FLOOD, 60), (0, SHUT, 0)),
    "reset_mid_write": ops((0, CONNECT, 0), (0, FLOOD, 60), (0, RESET, 0)),
    "close_with_unread_echo": ops((0, CONNECT, 0), (0, SEND, 100), (0, PAUSE, 3), (0, CLOSE, 0)),
    "reset_right_after_connect": ops((0, CONNECT, 0), (1, CONNECT, 0), (1, RESET, 0), (0, SEND, 5)),
    "half_close_then_read": ops((0, CONNECT, 0), (0, SEND, 50), (0, SHUT, 0), (0, PAUSE, 3), (0, RECV, 255)),
    "four_clients": ops((0, CONNECT, 0), (1, CONNECT, 0), (2, CONNECT, 0), (3, CONNECT, 0), (0, SEND, 10),
                        (1, FLOOD, 20), (2, SEND, 30), (3, SHUT, 0), (2, RESET, 0), (1, RECV, 100), (0, CLOSE, 0)),
    "reuse_slot": ops((0, CONNECT, 0), (0, SEND, 10), (0, CLOSE, 0), (0, CONNECT, 0), (0, SEND, 10), (0, RECV, 10)),
    "register_first": ops((0, CONNECT, 0), (0, SEND, 10), (0, RECV, 10), options=0),
    # the session closes with input after it unread: the echo up to the close byte, then a FIN
    "close_byte_then_more": ops((0, CONNECT, 0), (0, SEND, 20), (0, CLOSE_BYTE, 0), (0, FLOOD, 30),
                                (0, RECV, 255)),
    "close_byte_while_paused": ops((0, CONNECT, 0), (0, FLOOD, 40), (0, CLOSE_BYTE, 0), (0, SEND, 20),
                                   (0, RECV, 255), (0, RECV, 255)),
    "close_byte_short_linger": ops((0, CONNECT, 0), (0, CLOSE_BYTE, 0), (0, SEND, 10), (0, WAIT, 50),
                                   (0, SEND, 10), options=SHORT_LINGER | READ_FIRST),
    # graceful and immediate stops from each state: idle, mid-request, paused, closing, lingering
    "drain_each_state": ops((0, CONNECT, 0), (0, SEND, 3), (0, NEWLINE, 0), (0, RECV, 10),
                            (1, CONNECT, 0), (1, SEND, 5),
                            (2, CONNECT, 0), (2, FLOOD, 40),
                            (3, CONNECT, 0), (3, FLOOD, 40), (3, CLOSE_BYTE, 0),
                            (0, DRAIN, 0), (1, SEND, 2), (1, NEWLINE, 0), (2, RECV, 255), (3, RECV, 255)),
    "stop_now_each_state": ops((0, CONNECT, 0), (1, CONNECT, 0), (1, SEND, 5), (2, CONNECT, 0), (2, FLOOD, 40),
                               (3, CONNECT, 0), (3, CLOSE_BYTE, 0), (3, SEND, 5), (0, STOP_NOW, 0),
                               (2, RECV, 255)),
    "drain_then_request_timeout": ops((0, CONNECT, 0), (0, SEND, 5), (0, DRAIN, 0), (0, WAIT, 50),
                                      (0, RECV, 255), options=REQUEST | READ_FIRST),
    "drain_while_lingering": ops((0, CONNECT, 0), (0, CLOSE_BYTE, 0), (0, SEND, 5), (0, RECV, 10),
                                 (0, DRAIN, 0), (0, WAIT, 20)),
    "request_timeout_mid_request": ops((0, CONNECT, 0), (0, SEND, 5), (0, WAIT, 50), (0, SEND, 5),
                                       (0, RECV, 255), options=REQUEST),
    "idle_timeout_while_paused": ops((0, CONNECT, 0), (0, FLOOD, 40), (0, WAIT, 50), (0, RECV, 255),
                                     options=IDLE | READ_FIRST),
    "all_timeouts": ops((0, CONNECT, 0), (0, SEND, 5), (1, CONNECT, 0), (1, CLOSE_BYTE, 0), (1, SEND, 5),
                        (2, CONNECT, 0), (2, FLOOD, 40), (0, WAIT, 59), (2, RECV, 255),
                        options=IDLE | REQUEST | SHORT_LINGER),
}


def write(dirname, seeds):
    """Rewrites the generated seeds; the regress-* inputs added by hand (fuzz/README.md) are kept."""
    path = os.path.join(HERE, "corpus", dirname)
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if not name.startswith("regress-"):
            os.remove(os.path.join(path, name))
    for name, data in seeds.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("http", HTTP)
    write("connection", CONNECTION)
