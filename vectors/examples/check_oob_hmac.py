#!/usr/bin/env python3
"""Checks an IDProv HMAC implementation against oob_hmac.json.

Standard library only. The functions `blank_signature`, `verify` and
`sign_request` are the implementation under test: a port to another
language follows them line by line. Exit status 0 when every case agrees.

    python3 check_oob_hmac.py path/to/oob_hmac.json
"""
import base64
import hashlib
import hmac
import json
import sys


class Invalid(Exception):
    """The message must be refused."""


def _skip_ws(s, i):
    while i < len(s) and s[i] in " \t\n\r":
        i += 1
    return i


def _scan_string(s, i):
    """Returns the index just past the string literal starting at s[i]."""
    assert s[i] == '"'
    i += 1
    while True:
        if i >= len(s):
            raise Invalid("unterminated string")
        c = s[i]
        if c == '"':
            return i + 1
        if c == "\\":
            i += 6 if s[i + 1 : i + 2] == "u" else 2
        elif ord(c) < 0x20:
            raise Invalid("control character in string")
        else:
            i += 1


def _scan_value(s, i, depth=0):
    """Returns the index just past the JSON value starting at s[i]."""
    if depth > 64:
        raise Invalid("nested too deep")
    i = _skip_ws(s, i)
    if i >= len(s):
        raise Invalid("value expected")
    c = s[i]
    if c == '"':
        return _scan_string(s, i)
    if c in "{[":
        close = "}" if c == "{" else "]"
        i = _skip_ws(s, i + 1)
        if s[i : i + 1] == close:
            return i + 1
        while True:
            if c == "{":
                i = _scan_string(s, _skip_ws(s, i))
                i = _skip_ws(s, i)
                if s[i : i + 1] != ":":
                    raise Invalid("colon expected")
                i += 1
            i = _skip_ws(s, _scan_value(s, i, depth + 1))
            if s[i : i + 1] == ",":
                i += 1
                continue
            if s[i : i + 1] == close:
                return i + 1
            raise Invalid("comma or close expected")
    j = i
    while j < len(s) and s[j] not in ",]} \t\n\r":
        j += 1
    json.loads(s[i:j])  # numbers and literals: let json judge them
    return j


def blank_signature(message):
    """Raw blanking: (signing input, signature text) of a received message."""
    s = message
    i = _skip_ws(s, 0)
    if s[i : i + 1] != "{":
        raise Invalid("top level is not an object")
    end = _scan_value(s, i)
    if _skip_ws(s, end) != len(s):
        raise Invalid("data after the object")
    json.loads(s)  # full validation of what the scanner skipped
    found = []
    i = _skip_ws(s, i + 1)
    while s[i] != "}":
        key_end = _scan_string(s, i)
        key = json.loads(s[i:key_end])
        v_start = _skip_ws(s, _skip_ws(s, key_end) + 1)
        v_end = _scan_value(s, v_start, 1)
        if key == "signature":
            found.append((v_start, v_end))
        i = _skip_ws(s, v_end)
        if s[i] == ",":
            i = _skip_ws(s, i + 1)
    if not found:
        raise Invalid("no signature member")
    if len(found) > 1:
        raise Invalid("duplicate signature member")
    start, stop = found[0]
    if s[start] != '"':
        raise Invalid("signature is not a string")
    return s[:start] + '""' + s[stop:], json.loads(s[start:stop])


def verify(message, secret):
    signing_input, sig = blank_signature(message)
    if not sig:
        raise Invalid("empty signature")
    try:
        tag = base64.b64decode(sig, validate=True)
    except ValueError:
        raise Invalid("not standard base64")
    if len(tag) != 32 or base64.b64encode(tag).decode() != sig:
        raise Invalid("not a 32-byte standard base64 tag")
    want = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(tag, want):
        raise Invalid("signature does not match")
    return signing_input


def go_json(value):
    """json.dumps the way Go's encoder writes strings."""
    out = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029"),
                 ("\\b", "\\u0008"), ("\\f", "\\u000c")):
        out = out.replace(a, b)
    return out


def sign_request(fields, secret):
    order = ["deviceID", "ip", "mac", "publicKeyPEM"]
    def render(sig):
        parts = [go_json(k) + ":" + go_json(fields[k]) for k in order]
        parts.append('"signature":' + go_json(sig))
        return "{" + ",".join(parts) + "}"
    tag = hmac.new(secret.encode(), render("").encode(), hashlib.sha256).digest()
    return render(base64.b64encode(tag).decode())


def main(path):
    doc = json.load(open(path, encoding="utf-8"))
    passed = failed = 0
    for group in doc["testGroups"]:
        for t in group["tests"]:
            if group["type"] == "RequestSign":
                ok = sign_request(t["request"], t["secret"]) == t["message"]
            else:
                try:
                    got = verify(t["message"], t["secret"])
                    ok = t["result"] != "invalid"
                    if ok and "signingInput" in t:
                        ok = got == t["signingInput"]
                except (Invalid, ValueError, IndexError) as e:
                    ok = t["result"] != "valid"
            if ok:
                passed += 1
            else:
                failed += 1
                print(f"tcId {t['tcId']} ({t['comment']}): expected {t['result']}")
    print(f"oob_hmac: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "oob_hmac.json"))
