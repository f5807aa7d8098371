"""Every failure shape a tool returns is a failed call (environments/failures.py), on real BFCL classes."""

import pytest

from funreason_pipeline.environments.bfcl import BfclEnvironment
from funreason_pipeline.environments.failures import failure_of, no_op_of
from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_by_name


def env(cls, scenario=None):
    e = BfclEnvironment(cls)
    e.load_scenario(scenario or {})
    return e


@pytest.mark.parametrize("value, method, message", [
    ({"error": "Ticket with ID 9 not found."}, "get_ticket", "Ticket with ID 9 not found."),
    ([{"error": "User not authenticated. Please log in to view tickets."}], "get_user_tickets",
     "User not authenticated. Please log in to view tickets."),
    ({"result": {"items": [{"error": "deep"}]}}, "x", "deep"),
    (["Error: User not authenticated. Please log in to view the watchlist."], "get_watchlist",
     "User not authenticated. Please log in to view the watchlist."),
    ({"login_status": False, "message": "User ID 'U9' not found."}, "message_login", "User ID 'U9' not found."),
    ({"authentication_status": False}, "authenticate_twitter", "the call reported a failure: authentication_status=False"),
    ({"follow_status": False}, "follow_user", "the call reported a failure: follow_status=False"),
    ({"success": False}, "ticket_login", "the call reported a failure: success=False"),
    ({"verification_status": False, "verification_failure": "Passport must be issued by the United States."},
     "verify_traveler_information", "Passport must be issued by the United States."),
    ({"status": "error", "message": "m"}, "x", "m"),
    ({"status": "No user is currently logged in"}, "logout", "No user is currently logged in"),
    ({"status": "Already logged in"}, "trading_login", "Already logged in"),
    ({"retweet_status": "Already retweeted"}, "retweet", "Already retweeted"),
    ({"symbol": "Stock not found"}, "get_symbol_by_name", "symbol: Stock not found"),
    ({"nearest_airport": "Unknown"}, "get_nearest_airport_by_city", "nearest_airport: Unknown"),
    ("User not found", "find_user", "User not found"),
    ({"error": 404}, "x", "404"),
])
def test_failure_shapes_are_flagged(value, method, message):
    assert failure_of(value, method) == message


@pytest.mark.parametrize("value, method", [
    # status reads: False is the answer
    ({"login_status": False}, "get_login_status"), ({"status": False}, "travel_get_login_status"),
    ({"login_status": False}, "posting_get_login_status"),
    # content that happens to say "not found" or "error" is data
    ({"file_content": "not found"}, "cat"), ({"file_content": "Error: disk full"}, "cat"),
    ({"id": 3, "username": "ana", "content": "Stock not found, again"}, "post_tweet"),
    ([{"id": 1, "content": "Error: 404 page"}], "get_user_tweets"), ({"terminal_output": "Invalid input"}, "echo"),
    ({"matching_lines": ["Error: timeout"]}, "grep"), ({"last_lines": "not found"}, "tail"),
    # successes
    ({"status": "Ticket 3 has been closed successfully."}, "close_ticket"), ({"follow_status": True}, "follow_user"),
    ({"error": None, "id": 2}, "x"), ({"status": "Pending"}, "place_order"), ({"canDrive": False}, "estimate"),
    (False, "is_open"), ("Errors found: 0", "x"), ([{"ok": False}], "x"), (None, "mkdir"), ([], "find"),
])
def test_legitimate_results_are_not_failures(value, method):
    assert failure_of(value, method) is None


def test_no_op_of_empty_updates_and_required_lists():
    props = {"ticket_id": {"type": "integer"}, "updates": {"type": "object"}, "tags": {"type": "array"}}
    assert "updates" in no_op_of(props, ["ticket_id", "updates"], {"ticket_id": 1, "updates": {}})
    assert "tags" in no_op_of(props, ["tags"], {"tags": []})
    assert no_op_of(props, [], {"tags": []}) is None  # an optional empty list is a default
    assert no_op_of(props, ["updates"], {"updates": {"priority": 2}}) is None


# ---- through the adapters: real BFCL classes --------------------------------------------------


def test_bfcl_twitter_failed_authentication_and_follow_are_failures():
    tw = env("TwitterAPI", {"username": "ana", "password": "pw1", "authenticated": False, "tweets": {},
                            "comments": {}, "retweets": {}, "following_list": ["bob"], "tweet_counter": 0})
    res = tw.call("authenticate_twitter", {"username": "ana", "password": "wrong"})
    assert not res.ok and res.value == {"authentication_status": False}
    assert tw.call("authenticate_twitter", {"username": "ana", "password": "pw1"}).ok
    res = tw.call("follow_user", {"username_to_follow": "bob"})  # already followed
    assert not res.ok and res.value == {"follow_status": False}
    assert tw.call("posting_get_login_status", {}).ok  # a status read


def test_bfcl_tickets_error_in_a_list_and_empty_updates():
    tk = env("TicketAPI")
    res = tk.call("get_user_tickets", {})
    assert not res.ok and "not authenticated" in res.error
    assert not tk.call("ticket_login", {"username": "ana", "password": ""}).ok  # success: False
    assert tk.call("ticket_login", {"username": "ana", "password": "pw"}).ok
    made = tk.call("create_ticket", {"title": "Printer jam", "description": "Paper stuck", "priority": 2})
    assert made.ok
    res = tk.call("edit_ticket", {"ticket_id": made.value["id"], "updates": {}})
    assert not res.ok and res.error.startswith("no-op") and res.value is None
    assert tk.call("edit_ticket", {"ticket_id": made.value["id"], "updates": {"priority": 3}}).ok


def test_bfcl_trading_lookups_that_find_nothing_are_failures():
    tb = env("TradingBot")
    res = tb.call("get_symbol_by_name", {"name": "Nonexistent Corp"})
    assert not res.ok and res.error == "symbol: Stock not found"
    assert tb.call("get_symbol_by_name", {"name": "Apple"}).ok
    tb.call("trading_logout", {})
    res = tb.call("get_watchlist", {})
    assert not res.ok and "not authenticated" in res.error
    res = tb.call("trading_get_login_status", {})
    assert res.ok and res.value == {"status": False}  # answers the question


def test_bfcl_message_login_of_unknown_user_is_a_failure():
    ts = toolset_by_name("messages")
    world = World.from_scenario(ts, generate_scenario(ts, 3))
    res = world.call("message_login", {"user_id": "USR999"})
    assert not res.ok and "not found" in res.error
    assert world.call("message_get_login_status", {}).ok


def test_bfcl_file_content_saying_not_found_is_data():
    fs = env("GorillaFileSystem", {"root": {"ana": {"type": "directory", "contents": {
        "log.txt": {"type": "file", "content": "not found"}}}}})
    res = fs.call("cat", {"file_name": "log.txt"})
    assert res.ok and res.value == {"file_content": "not found"}
    res = fs.call("cat", {"file_name": "missing.txt"})
    assert not res.ok and "No such file" in res.error


def test_a_python_set_in_an_error_message_prints_in_one_order_whatever_the_hash_seed():
    """BFCL's TravelAPI says "Must be one of {'economy', 'business', 'first'}" in the order of the
    process's hash seed; rejections recorded from it must be the same in every run."""
    import subprocess
    import sys

    code = ("from funreason_pipeline.environments.base import invoke_tool\n"
            "def book(travel_class):\n"
            "    return {'error': f'Must be one of {set([\"economy\", \"business\", \"first\"])}'}\n"
            "print(invoke_tool(book, 'book', {'travel_class': 'x'}).error)")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert seen == {"Must be one of {'business', 'economy', 'first'}\n"}
