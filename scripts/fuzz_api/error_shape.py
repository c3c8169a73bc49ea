"""Schemathesis check: every error Vigie sends is its one JSON error shape."""
import schemathesis


@schemathesis.check
def error_is_vigie_json(ctx, response, case):
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
        raise AssertionError(f"{response.status_code} error body is not JSON: {response.text[:200]!r}") from e
    missing = {"status", "code", "message"} - set(body)
    assert not missing, f"error body lacks {sorted(missing)}: {body}"
    assert body["status"] == response.status_code, f"status {body['status']} in a {response.status_code} response"
    assert body["message"], f"empty message: {body}"
    return None
