#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/http, connection, memcache and resp (input formats: the first
comment of fuzz_http.cpp, fuzz_connection.cpp, fuzz_memcache.cpp and fuzz_resp.cpp). Run it after changing a
format or to add seeds."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def http_seed(payload, preset=0, timeout=False, splits=(), cuts=(), slow=False):
    """Byte 0: preset (bits 0-1), end with the request time-out (bit 2), a slow client (bit 3), number of
    split bytes (bits 4-7). A split byte b cuts the payload at b*len/256; cuts are payload offsets turned
    into such bytes."""
    for offset in cuts:
        b = -(-offset * 256 // len(payload))
        assert b < 256 and b * len(payload) // 256 == offset, offset
        splits += (b,)
    assert len(splits) < 16
    head = bytes([preset | (4 if timeout else 0) | (8 if slow else 0) | (len(splits) << 4)]) + bytes(splits)
    return head + payload.encode("latin-1")


def req(line, *headers, body="", host="a"):
    """A request with CRLF line ends; HTTP/1.1 ones get the Host field they need unless host is None."""
    if host is not None and line.endswith("HTTP/1.1") and not any(h.lower().startswith("host:") for h in headers):
        headers = ("Host: " + host,) + headers
    return line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n" + body


def chunked(*headers, body, line="POST / HTTP/1.1"):
    return req(line, "Transfer-Encoding: chunked", *headers, body=body)


GET = req("GET / HTTP/1.1", host="localhost")
CONTINUE = req("POST /up HTTP/1.1", "Expect: 100-continue", "Content-Length: 5")
CHUNKED_CONTINUE = chunked("Expect: 100-Continue", body="")
BIG = req("GET /bytes/1048576 HTTP/1.1")
HTTP = {
    "get_root": http_seed(GET),
    "get_bytes_10": http_seed(req("GET /bytes/10 HTTP/1.1")),
    "get_bytes_0": http_seed(req("GET /bytes/0 HTTP/1.1")),
    "get_bytes_too_big": http_seed(req("GET /bytes/1048577 HTTP/1.1")),
    "get_bytes_overflow": http_seed(req("GET /bytes/99999999999999999999999 HTTP/1.1")),
    "get_bytes_small_route": http_seed(req("GET /bytes/5000 HTTP/1.1"), preset=1),
    "get_bytes_not_number": http_seed(req("GET /bytes/12ab HTTP/1.1")),
    "get_not_found": http_seed(req("GET /nothing/here?q=1 HTTP/1.1")),
    "get_query_root": http_seed(req("GET /?a=b HTTP/1.1")),
    "head_root": http_seed(req("HEAD / HTTP/1.1")),
    "head_bytes": http_seed(req("HEAD /bytes/100 HTTP/1.1")),
    "head_bytes_too_big": http_seed(req("HEAD /bytes/1048577 HTTP/1.1")),
    "head_not_found": http_seed(req("HEAD /x HTTP/1.1")),
    "head_with_bad_length": http_seed(req("HEAD / HTTP/1.1", "Content-Length: x")),
    "post_content_length": http_seed(req("POST /form HTTP/1.1", "Content-Length: 11", body="hello world")),
    "post_content_length_split": http_seed(
        req("POST / HTTP/1.1", "Content-Length: 11", body="hello world"), splits=(40, 200)),
    "post_chunked": http_seed(chunked(body="5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")),
    "post_chunked_split": http_seed(chunked(body="5\r\nhello\r\n0\r\n\r\n"), splits=(10, 60, 70, 90)),
    "post_chunked_trailer": http_seed(chunked(body="3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")),
    "post_chunked_hex_sizes": http_seed(chunked(body="A\r\n0123456789\r\n00f\r\n" + "f" * 15 + "\r\n000\r\n\r\n")),
    "put_then_get": http_seed(req("PUT /k HTTP/1.1", "Content-Length: 3", body="abc") + GET),
    "delete": http_seed(req("DELETE /k HTTP/1.1")),
    "trace_patch": http_seed(req("TRACE / HTTP/1.1") + req("PATCH /p HTTP/1.1", "Content-Length: 1", body="p")),
    "options_star": http_seed(req("OPTIONS * HTTP/1.1")),
    "pipelined_gets": http_seed(GET * 3),
    "pipelined_mixed": http_seed(GET + req("HEAD / HTTP/1.1") + req("POST / HTTP/1.1", "Content-Length: 2", body="hi")
                                 + req("GET /bytes/3 HTTP/1.1")),
    "pipelined_split": http_seed(GET + req("HEAD /bytes/7 HTTP/1.1") + GET, splits=(30, 31, 100, 180)),
    "pipelined_many_splits": http_seed(GET * 4, splits=tuple(range(8, 248, 16))),
    "pipelined_then_chunked": http_seed(GET + chunked(body="0\r\n\r\n") + GET, splits=(20, 120)),
    "http10": http_seed(req("GET / HTTP/1.0")),
    "http10_keep_alive": http_seed(req("HEAD /bytes/2?x=%20 HTTP/1.0", "Connection:  Keep-Alive") + req("GET / HTTP/1.0")),
    "http10_close_and_keep_alive": http_seed(req("GET / HTTP/1.0", "Connection: keep-alive, close") + GET),
    "http10_with_host": http_seed(req("GET / HTTP/1.0", "Host: a", "Connection: keep-alive") + GET),
    "http12_is_http11": http_seed(req("GET / HTTP/1.2") + GET),
    "connection_close_then_more": http_seed(req("GET / HTTP/1.1", "Connection: close") + GET),
    "connection_tokens": http_seed(req("GET / HTTP/1.1", "connection:CLOSE") + GET),
    "connection_list": http_seed(req("GET / HTTP/1.1", "Connection: , foo,\tkeep-alive ,") + GET),
    "proxy_connection": http_seed(req("GET / HTTP/1.1", "Proxy-Connection: close") + GET),
    "field_names_like_framing": http_seed(req("GET / HTTP/1.1", "Transfer-Encodingx: a", "Upgrade-Insecure-Requests: 1",
                                              "Content-Lengthy: 2", "Connections: close")),
    "fields_at_head_limit": http_seed(req("GET / HTTP/1.1", *("X-H%d: v" % i for i in range(17))), preset=1),
    "field_value_obs_text": http_seed(req("GET / HTTP/1.1", "X-A: caf\xe9 \t ok\t")),
    "leading_crlf": http_seed("\r\n\r\n" + GET),
    "leading_lf": http_seed("\n\n" + GET + "\n" + GET),
    "bare_lf": http_seed("GET / HTTP/1.1\nHost: a\n\n"),
    "bare_lf_mixed": http_seed("GET / HTTP/1.1\r\nHost: a\nContent-Length: 2\r\n\nhi" + GET),
    "bare_cr": http_seed("GET / HTTP/1.1\rHost: a\r\n\r\n"),
    "bare_lf_in_chunk": http_seed(chunked(body="2\nhi\r\n0\r\n\r\n")),
    "upgrade_without_body": http_seed(req("GET / HTTP/1.1", "Connection: Upgrade", "Upgrade: websocket") + "rest"),
    "upgrade_with_body": http_seed(req("GET / HTTP/1.1", "Connection: Upgrade", "Upgrade: h2c", "Content-Length: 5",
                                       body="abcde") + GET, splits=(80,)),
    "connect_authority": http_seed(req("CONNECT example.com:443 HTTP/1.1", host="example.com:443") + "tunnel"),
    "absolute_form": http_seed(req("GET http://localhost/bytes/4?x HTTP/1.1") + req("GET http://localhost HTTP/1.1")),
    "expect_continue": http_seed(CONTINUE + "hello" + GET, cuts=(len(CONTINUE), len(CONTINUE) + 2)),
    "expect_continue_whole": http_seed(CONTINUE + "hello"),
    "expect_continue_no_body": http_seed(req("GET / HTTP/1.1", "Expect: 100-continue") + GET),
    "expect_continue_too_big": http_seed(req("POST / HTTP/1.1", "Expect: 100-continue", "Content-Length: 100"), preset=1),
    "expect_continue_chunked": http_seed(CHUNKED_CONTINUE + "1\r\nx\r\n0\r\n\r\n", cuts=(len(CHUNKED_CONTINUE),)),
    "expect_continue_timeout": http_seed(CONTINUE, timeout=True),
    "expect_continue_http10": http_seed(req("POST / HTTP/1.0", "Expect: 100-continue", "Content-Length: 1", body="x")),
    # refused: one of each status and rule in protocols/src/http_request.hpp
    "get_no_host": http_seed(req("GET / HTTP/1.1", host=None)),
    "two_hosts": http_seed(req("GET / HTTP/1.1", "Host: a", "Host: b")),
    "host_empty_and_port": http_seed(req("GET / HTTP/1.1", host="") + req("GET / HTTP/1.1", host="a.b:8080")),
    "host_bad": http_seed(req("GET / HTTP/1.1", host="a b")),
    "unknown_method": http_seed(req("BREW /pot HTTP/1.1")),
    "lowercase_method": http_seed(req("get / HTTP/1.1")),
    "bad_method": http_seed(req("G@T / HTTP/1.1")),
    "no_version": http_seed("GET /\r\n\r\n"),
    "bad_version": http_seed(req("GET / HTTP/9.x")),
    "version_2": http_seed(req("GET / HTTP/2.0")),
    "double_space": http_seed(req("GET  / HTTP/1.1")),
    "target_fragment": http_seed(req("GET /a#b HTTP/1.1")),
    "target_star_for_get": http_seed(req("GET * HTTP/1.1")),
    "target_authority_for_get": http_seed(req("GET a.b:80 HTTP/1.1")),
    "target_not_ascii": http_seed(req("GET /caf\xe9 HTTP/1.1")),
    "bad_header_name": http_seed(req("GET / HTTP/1.1", "Bad Header: x")),
    "space_before_colon": http_seed(req("GET / HTTP/1.1", "X-A : x")),
    "obs_fold": http_seed(req("GET / HTTP/1.1", "X-A: x", " folded")),
    "space_before_first_field": http_seed(req("GET / HTTP/1.1", host=None)[:-2] + " Host: a\r\n\r\n"),
    "ctl_in_value": http_seed(req("GET / HTTP/1.1", "X-A: a\x01b")),
    "bad_chunk_size": http_seed(chunked(body="zz\r\nabc\r\n")),
    "chunk_size_space": http_seed(chunked(body="3 \r\nabc\r\n0\r\n\r\n")),
    "chunk_ext_odd": http_seed(chunked(body="3 ;a=\"x\r\nabc\r\n0;;\r\n\r\n")),
    "chunk_data_no_crlf": http_seed(chunked(body="3\r\nabcX\r\n0\r\n\r\n")),
    "chunk_trailer_framing": http_seed(chunked(body="1\r\nx\r\n0\r\nContent-Length: 9\r\nConnection: x y\r\n\r\n") + GET),
    "chunk_trailer_fold": http_seed(chunked(body="0\r\nA: b\r\n c\r\n\r\n")),
    "length_and_chunked": http_seed(req("POST / HTTP/1.1", "Content-Length: 3", "Transfer-Encoding: chunked",
                                        body="3\r\nabc\r\n0\r\n\r\n")),
    "te_gzip_chunked": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: gzip, chunked", body="0\r\n\r\n")),
    "te_chunked_gzip": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: chunked, gzip", body="0\r\n\r\n")),
    "te_two_lines": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: ,", "transfer-encoding: CHUNKED",
                                  body="0\r\n\r\n") + GET),
    "te_chunked_twice": http_seed(req("POST / HTTP/1.1", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked",
                                      body="0\r\n\r\n")),
    "te_http10": http_seed(req("POST / HTTP/1.0", "Transfer-Encoding: chunked", body="0\r\n\r\n")),
    "negative_length": http_seed(req("POST / HTTP/1.1", "Content-Length: -1")),
    "length_list": http_seed(req("POST / HTTP/1.1", "Content-Length: 2, 2", body="ab")),
    "length_ows": http_seed(req("POST / HTTP/1.1", "Content-Length: \t007 ", body="abcdefg") + GET),
    "duplicate_length": http_seed(req("POST / HTTP/1.1", "Content-Length: 1", "Content-Length: 2", body="ab")),
    "length_overflow": http_seed(req("POST / HTTP/1.1", "Content-Length: 99999999999999999999999", body="ab")),
    "oversized_header": http_seed(req("GET / HTTP/1.1", "X-Big: " + "a" * 9000)),
    "oversized_header_small_limit": http_seed(req("GET / HTTP/1.1", *("X-H%d: value" % i for i in range(20))), preset=1),
    "oversized_url_tiny_limit": http_seed(req("GET /" + "u" * 80 + " HTTP/1.1"), preset=2),
    "oversized_empty_lines": http_seed("\r\n" * 40 + GET, preset=2),
    "oversized_body_length": http_seed(req("POST / HTTP/1.1", "Content-Length: 100", body="b" * 100), preset=1),
    "oversized_body_chunked": http_seed(chunked(body="40\r\n" + "c" * 64 + "\r\n40\r\n" + "c" * 64 + "\r\n0\r\n\r\n"),
                                        preset=1),
    "oversized_chunk_ext": http_seed(chunked(body="1;" + "e" * 300 + "\r\nx\r\n0\r\n\r\n"), preset=1),
    "any_body_too_big": http_seed(req("POST / HTTP/1.1", "Content-Length: 1", body="x"), preset=3),
    "incomplete_head_timeout": http_seed("GET / HTTP/1.1\r\nHost: a\r\n", timeout=True),
    "incomplete_body_timeout": http_seed(req("POST / HTTP/1.1", "Content-Length: 10", body="abc"), timeout=True),
    "empty_lines_timeout": http_seed("\r\n", timeout=True),
    "incomplete_at_eof": http_seed(GET + "GET /by"),
    # flow control: large bodies stream while the output is not congested, later requests wait (held), and
    # a slow client makes the session pause and go on in on_drained()
    "stream_pipelined": http_seed(BIG * 3 + req("GET /bytes/3 HTTP/1.1") + "GET / HT", slow=True,
                                  splits=(40, 41, 100, 200)),
    "stream_pipelined_fast": http_seed(BIG * 3 + req("HEAD /bytes/1048576 HTTP/1.1") + GET),
    "stream_then_close": http_seed(BIG + req("GET /bytes/1048576 HTTP/1.1", "Connection: close") + GET, slow=True),
    "stream_then_error": http_seed(BIG * 2 + "\x01junk", slow=True),
    "stream_then_timeout": http_seed(BIG + "GET / HTTP/1.1\r\nHo", slow=True, timeout=True),
    "stream_then_continue": http_seed(BIG + CONTINUE + "abcde" + CONTINUE + "ab", slow=True, timeout=True),
    "stream_many_small": http_seed("".join(req("GET /bytes/%d HTTP/1.1" % (60000 + i)) for i in range(40)),
                                   slow=True),
    "stream_http10": http_seed(req("GET /bytes/1048576 HTTP/1.0") + BIG, slow=True),
    "stream_past_the_cap": http_seed(BIG * 12, slow=True),
}

# fuzz_connection: an options byte (bit 0 idle time-out, 1 request time-out, 2 short linger, 3 read
# before registering, 4-7 the first injection mode), then [op][arg] pairs; op bits 0-3 action, bits 4-5
# client slot. INJECT (action 15) sets the injection mode to arg: scripted events added to the real ones.
(CONNECT, SEND, RECV, SHUT, CLOSE, RESET, FLOOD, PAUSE, CLOSE_BYTE, NEWLINE, DRAIN, STOP_NOW,
 WAIT) = range(13)
INJECT = 15
IDLE, REQUEST, SHORT_LINGER, READ_FIRST = 1, 2, 4, 8
DUPLICATE, ADD_READABLE, ADD_WRITABLE, ADD_WAKE = 1, 2, 4, 8


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
    # scripted events on top of the kernel's: duplicates (stale after a close), spurious flags, wake-ups
    "inject_all_from_start": ops((0, CONNECT, 0), (0, SEND, 10), (0, RECV, 10), (1, CONNECT, 0), (1, FLOOD, 40),
                                 (1, RECV, 255), (0, CLOSE_BYTE, 0), (0, RECV, 255),
                                 options=READ_FIRST | (DUPLICATE | ADD_READABLE | ADD_WRITABLE | ADD_WAKE) << 4),
    "inject_duplicates_then_reset": ops((0, CONNECT, 0), (0, INJECT, DUPLICATE), (0, SEND, 20), (0, RESET, 0),
                                        (1, CONNECT, 0), (1, SEND, 20), (1, RECV, 255)),
    "inject_spurious_while_paused": ops((0, CONNECT, 0), (0, INJECT, ADD_READABLE | ADD_WRITABLE), (0, FLOOD, 40),
                                        (0, PAUSE, 3), (0, RECV, 255), (0, INJECT, 0), (0, RECV, 255)),
    "inject_during_drain": ops((0, CONNECT, 0), (0, SEND, 5), (1, CONNECT, 0), (1, CLOSE_BYTE, 0),
                               (0, INJECT, DUPLICATE | ADD_READABLE | ADD_WAKE), (0, DRAIN, 0), (0, NEWLINE, 0),
                               (0, RECV, 255)),
}


def mc_seed(payload, tiny=False, slow=False, cuts=()):
    """Byte 0: tiny limits (bit 0), a slow client (bit 1), number of split bytes (bits 4-7); then the split
    bytes (payload offsets turned into bytes b that cut at b*len/256); then the payload."""
    splits = []
    for offset in cuts:
        b = -(-offset * 256 // len(payload))
        assert b < 256 and b * len(payload) // 256 == offset, offset
        splits.append(b)
    head = bytes([(1 if tiny else 0) | (2 if slow else 0) | (len(splits) << 4)]) + bytes(splits)
    return head + payload.encode("latin-1")


MEMCACHE = {
    "get": mc_seed("get k\r\n"),
    "set_get": mc_seed("set k 1 0 5\r\nhello\r\nget k nope\r\ngets k\r\n"),
    "storage_family": mc_seed("add a 0 0 1\r\nx\r\nreplace a 0 0 1\r\ny\r\nappend a 0 0 1\r\nz\r\n"
                              "prepend a 0 0 1\r\nw\r\ncas a 0 0 1 2\r\nv\r\nget a\r\n"),
    "noreply": mc_seed("set a 0 0 1 noreply\r\nx\r\nincr a 1 noreply\r\ndelete a noreply\r\n"),
    "arith": mc_seed("set n 0 0 3\r\n100\r\nincr n 18446744073709551615\r\ndecr n 5\r\nincr x 1\r\n"),
    "touch_gat": mc_seed("set t 0 10 1\r\nx\r\ntouch t 20\r\ngat 30 t\r\ngats -1 t\r\nget t\r\n"),
    "flush_stats": mc_seed("flush_all 10\r\nflush_all\r\nstats\r\nstats reset\r\nversion\r\nverbosity 1\r\n"),
    "errors": mc_seed("foo\r\nset a 0 0 -1\r\nset a 0 0 1\r\nabc\r\ndelete a 5\r\nincr a x\r\n\r\n"),
    "too_large": mc_seed("set big 0 0 100\r\n" + "x" * 100 + "\r\nget big\r\n", tiny=True),
    "too_large_split": mc_seed("set big 0 0 100\r\n" + "x" * 100 + "\r\nmn\r\n", tiny=True, cuts=(30, 80)),
    "evict": mc_seed("".join("set k%d 0 0 60\r\n%s\r\n" % (i, "v" * 60) for i in range(40)) + "get k0 k39\r\n",
                     tiny=True),
    "meta": mc_seed("ms m 3 T0 F5 c\r\nabc\r\nmg m v f t c k s Oq\r\nms m 1 MA\r\nd\r\nmd m q\r\nmn\r\n"),
    "meta_arith": mc_seed("ma c N0 J5 v t c\r\nma c MD D9 v\r\nma c q\r\nma c MX\r\nmg c v\r\nmn\r\n"),
    "meta_errors": mc_seed("mg\r\nmg k zz\r\nms k abc\r\nms k 2 Z\r\nhi\r\nma k Dx\r\nmd k x\r\n"),
    "multiget_slow": mc_seed("set v 0 0 60\r\n" + "v" * 60 + "\r\nget" + " v" * 200 + "\r\nmn\r\n",
                             slow=True),
    "quit": mc_seed("get a\r\nquit\r\nget b\r\n"),
    "split_everywhere": mc_seed("set a 0 0 2\r\nhi\r\nget a\r\n", cuts=(1, 5, 13, 15, 17, 20)),
def resp_seed(payload, small=False, slow=False, splits=()):
    """Byte 0: small limits (bit 0), a slow client (bit 1), number of split bytes (bits 4-7); then the split
    bytes (each cuts the payload at byte*len/256); then the payload."""
    assert len(splits) < 16
    head = bytes([(1 if small else 0) | (2 if slow else 0) | (len(splits) << 4)]) + bytes(splits)
    return head + (payload if isinstance(payload, bytes) else payload.encode("latin-1"))


def mb(*args):
    """A multibulk request."""
    return "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)


RESP = {
    "ping": resp_seed("PING\r\n"),
    "ping_multibulk": resp_seed(mb("PING")),
    "set_get": resp_seed(mb("SET", "k", "v") + mb("GET", "k"), splits=(30, 100)),
    "set_options": resp_seed(mb("SET", "k", "v", "EX", "10", "GET") + mb("SET", "k", "v", "NX") +
                             mb("SET", "k", "v", "XX", "KEEPTTL") + mb("SET", "k", "v", "PX", "0")),
    "incr_family": resp_seed("INCR n\r\nDECR n\r\nINCRBY n 9223372036854775807\r\nINCR n\r\nDECRBY n x\r\n"),
    "multi_keys": resp_seed(mb("MSET", "a", "1", "b", "2") + mb("MGET", "a", "b", "c") + mb("DEL", "a", "c") +
                            mb("EXISTS", "a", "b", "b")),
    "lists": resp_seed(mb("RPUSH", "l", "a", "b", "c") + mb("LPUSH", "l", "z") + mb("LRANGE", "l", "0", "-1") +
                       mb("LPOP", "l", "2") + mb("RPOP", "l") + mb("LLEN", "l") + mb("GET", "l")),
    "expiry": resp_seed(mb("SET", "k", "v") + mb("EXPIRE", "k", "100", "GT") + mb("TTL", "k") +
                        mb("PEXPIRE", "k", "-1") + mb("PTTL", "k")),
    "server": resp_seed(mb("CONFIG", "GET", "save") + mb("INFO") + mb("SELECT", "0") + mb("COMMAND", "DOCS") +
                        mb("HELLO", "2") + mb("CLIENT", "SETNAME", "x") + mb("DBSIZE") + mb("FLUSHALL")),
    "inline_quotes": resp_seed('SET "a b" "c\\x41\\n" \r\nGET \'a b\'\r\n\r\nECHO "x\r\n'),
    "unknown": resp_seed(mb("FOO", "a", "b") + "bar baz\r\n"),
    "quit": resp_seed("PING\r\nQUIT\r\nPING\r\n"),
    "protocol_errors": resp_seed("*1\r\n$x\r\n"),
    "expected_dollar": resp_seed("*1\r\nx\r\n"),
    "bad_count": resp_seed("*-x\r\n"),
    "empty_multibulks": resp_seed("*0\r\n*-1\r\nPING\r\n"),
    "small_limits_bulk": resp_seed(mb("SET", "k", "v" * 65), small=True),
    "small_limits_args": resp_seed(mb(*["a"] * 9), small=True),
    "small_limits_inline": resp_seed("ECHO " + "x" * 70 + "\r\n", small=True),
    "small_limits_request": resp_seed(mb("MSET", "a" * 60, "b" * 60, "c" * 60, "d" * 60), small=True),
    "slow_big_lrange": resp_seed(mb("RPUSH", "l", *["v" * 60] * 40) + mb("LRANGE", "l", "0", "-1") * 100, slow=True,
                                 splits=(128,)),
    "split_everywhere": resp_seed(mb("SET", "key", "value") + "GET key\r\n", splits=tuple(range(1, 256, 18))),
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
    write("memcache", MEMCACHE)
    write("resp", RESP)
