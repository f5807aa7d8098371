"""Arguments chosen by meaning, not type (matching/formats.py, matching/meaning.py, ArgumentProvider),
on the real BFCL and example tool specs."""

import random

import pytest

from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.matching.arguments import ArgumentProvider, meaning_of
from funreason_pipeline.matching.formats import described_format, format_share, in_format
from funreason_pipeline.matching.meaning import (
    free_text,
    is_free_text,
    is_message_text,
    is_no_op,
    looks_like_id,
)
from funreason_pipeline.matching.values import harvest

SEEDS = range(60)


def specs(toolset):
    return {t.name: t for t in toolset_tools(toolset_by_name(toolset))}


def proposals(spec, results=(), state=(), provider=None, seeds=SEEDS):
    provider = provider or ArgumentProvider(optional_rate=1.0)
    return [provider.propose(spec, list(results), list(state), random.Random(s)).args for s in seeds]


# ---- formats ----------------------------------------------------------------------------------------


def test_described_formats_of_real_parameters():
    travel = specs("travel")
    props = travel["register_credit_card"].properties
    assert described_format("expiration_date", props["expiration_date"]) == "month_year"
    assert described_format("card_number", props["card_number"]) == "card_number"
    assert described_format("cardholder_name", props["cardholder_name"]) == "person_name"
    assert described_format("card_verification_number", props["card_verification_number"]) == "cvv"
    assert described_format("travel_date", travel["book_flight"].properties["travel_date"]) == "date"
    lm = travel["get_budget_fiscal_year"].properties["lastModifiedAfter"]
    assert described_format("lastModifiedAfter", lm) == "datetime"
    trading = specs("trading")["get_transaction_history"].properties
    assert described_format("start_date", trading["start_date"]) == "date"
    assert described_format("file_name", specs("files")["cat"].properties["file_name"]) is None
    # a library card's number is not a payment card's 16 digits
    assert described_format("card_number", {"type": "string", "description": "The number on the library card."}) is None


@pytest.mark.parametrize("fmt, good, bad", [
    ("date", "2026-03-01", ["None", "2026-13-01", "03/01/2026", "1967-05-20T10:00:00"]),
    ("month_year", "04/2029", ["554129717921", "2029-04", "13/2029"]),
    ("card_number", "4111111111111111", ["4111", "4111-1111-1111-1111", 4111111111111111]),
    ("datetime", "2016-03-29T16:12:20", ["None", "2016-03-29"]),
    ("email", "ana.silva@example.com", ["ana", "ana@"]),
    ("person_name", "Camila", ["draft ideas", "plan backup", "USR001", "camila"]),
    ("cvv", 123, [12, "123", True]),
    ("time", "09:30", ["9.30", "25:00"]),
])
def test_in_format_accepts_the_format_and_rejects_the_rest(fmt, good, bad):
    assert in_format(fmt, good)
    for value in bad:
        assert not in_format(fmt, value), value


def test_format_share_counts_values_with_a_described_format():
    props = specs("travel")["register_credit_card"].properties
    ok, total = format_share([(props, {"card_number": "4111111111111111", "expiration_date": "554129717921",
                                       "cardholder_name": "Ana Silva", "access_token": "123456"})])
    assert (ok, total) == (2, 3)


# ---- meaning predicates ------------------------------------------------------------------------------


def test_message_text_is_recognised_and_user_text_is_not():
    for msg in ["Ticket 869 has been resolved successfully.", "Stock not found", "Error: no such file",
                "User 'USR001' logged in successfully.", "Comment added successfully"]:
        assert is_message_text(msg), msg
    for text in ["error.log", "Apple", "Reset the account credentials and confirmed the user can sign in again.",
                 "todo.txt", "High"]:
        assert not is_message_text(text), text


def test_ids_dates_and_numbers_are_not_prose():
    for v in ["1967-05-20", "893695", "USR040", "P-49501", "A-0005", 42, "2024-02-23 21:35:20", "04/2029"]:
        assert looks_like_id(v), v
    for v in ["Printer on floor 3 is jammed again.", "Great day at the conference", "hello"]:
        assert not looks_like_id(v), v
    tickets = specs("tickets")
    assert is_free_text("resolution", tickets["resolve_ticket"].properties["resolution"])
    assert not is_free_text("ticket_id", tickets["resolve_ticket"].properties["ticket_id"])


def test_no_op_arguments():
    tickets = specs("tickets")["edit_ticket"]
    assert is_no_op("edit_ticket", tickets.properties, tickets.required, {"ticket_id": 1, "updates": {}}) == "updates"
    brake = specs("vehicle")["pressBrakePedal"]
    assert is_no_op("pressBrakePedal", brake.properties, brake.required, {"pedalPosition": 0.0}) == "pedalPosition"
    assert is_no_op("pressBrakePedal", brake.properties, brake.required, {"pedalPosition": 0.5}) is None


def test_generated_prose_is_prose():
    rng = random.Random(1)
    for name, tool in [("resolution", "resolve_ticket"), ("text", "add_note"), ("message", "send_message"),
                       ("content", "post_tweet"), ("description", "create_ticket"), ("title", "create_ticket")]:
        for _ in range(20):
            text = free_text(name, tool, rng)
            assert not looks_like_id(text) and not is_message_text(text) and " " in text, (name, text)


# ---- the provider: negative cases (the defects of the demo day) ----------------------------------------


def test_one_value_is_never_given_to_two_parameters():
    math = specs("math")
    results = harvest({"result": 399.49}, source=0, producer="add")
    fed = {("divide", "a"): {("add", "result")}, ("divide", "b"): {("add", "result")}}
    for args in proposals(math["divide"], results, provider=ArgumentProvider(data_fields=fed)):
        assert args["a"] != args["b"], args
    files = specs("files")
    state = harvest({"contents": {"config": {"type": "directory"}}})
    for args in proposals(files["mv"], state=state):
        assert args["source"] != args["destination"], args


def test_message_text_is_never_an_argument():
    tickets = specs("tickets")
    results = harvest({"status": "Ticket 869 has been resolved successfully."}, source=0, producer="resolve_ticket")
    for args in proposals(tickets["get_user_tickets"], results):
        assert not is_message_text(args.get("status")), args
    trading = specs("trading")
    results = harvest({"symbol": "Stock not found"}, source=0, producer="get_symbol_by_name")
    for args in proposals(trading["add_to_watchlist"], results):
        assert "Stock not found" not in str(args), args


def test_free_text_never_gets_ids_or_dates():
    ts = toolset_by_name("clinic")
    tools = {t.name: t for t in toolset_tools(ts)}
    world = World.from_scenario(ts, generate_scenario(ts, 2), list(tools.values()))
    state = harvest(world.snapshot())
    note = next(t for n, t in tools.items() if n.endswith("add_note"))
    for args in proposals(note, state=state):
        text = args.get("text")
        assert text is None or not looks_like_id(text), args
    tickets = specs("tickets")
    results = harvest({"id": 893695, "created_at": "2026-05-20"}, source=0, producer="create_ticket")
    for args in proposals(tickets["resolve_ticket"], results):
        assert not looks_like_id(args["resolution"]), args


def test_values_follow_their_described_format():
    travel = specs("travel")
    junk = harvest({"card_id": "554129717921", "expiration": "None", "name": "draft ideas"}, source=0,
                   producer="register_credit_card")
    for args in proposals(travel["register_credit_card"], junk):
        assert in_format("month_year", args["expiration_date"]), args
        assert in_format("card_number", args["card_number"]), args
        assert in_format("person_name", args["cardholder_name"]), args
    for args in proposals(travel["get_budget_fiscal_year"]):
        assert args.get("lastModifiedAfter") in (None,) or in_format("datetime", args["lastModifiedAfter"]), args
    for args in proposals(specs("trading")["get_transaction_history"]):
        for k in ("start_date", "end_date"):
            assert k not in args or in_format("date", args[k]), args
    for args in proposals(travel["authenticate_travel"]):
        assert in_format("person_name", args["user_first_name"]) and in_format("person_name", args["user_last_name"])
        assert args["user_first_name"] != args["user_last_name"], args
        assert args["grant_type"] in ("read_write", "read", "write"), args  # the options its description lists


def test_no_op_calls_are_not_proposed():
    brake = specs("vehicle")["pressBrakePedal"]
    state = harvest({"brakePedalPosition": 0.0, "pedalPosition": 0.0})
    for args in proposals(brake, state=state):
        assert args["pedalPosition"] != 0, args
    edit = specs("tickets")["edit_ticket"]
    for args in proposals(edit, harvest({"id": 3}, source=0, producer="create_ticket")):
        assert args["updates"], args
        assert is_no_op("edit_ticket", edit.properties, edit.required, args) is None


# ---- positive: meaning does not cut what should flow ----------------------------------------------------


def test_ids_still_flow_to_id_parameters_and_text_to_text():
    tickets = specs("tickets")
    results = harvest({"id": 893695, "title": "Printer jam"}, source=0, producer="create_ticket")
    fed = {("resolve_ticket", "ticket_id"): {("create_ticket", "id")}}
    got = proposals(tickets["resolve_ticket"], results, provider=ArgumentProvider(data_fields=fed))
    assert sum(a["ticket_id"] == 893695 for a in got) > len(got) / 2
    twitter = specs("files_twitter")
    content = "Quarterly numbers look good, sharing the summary with the team tomorrow."
    results = harvest({"file_content": content}, source=0, producer="cat")
    got = proposals(twitter["post_tweet"], results)
    assert any(a.get("content") == content for a in got)  # an earlier file's text may still be posted


def test_meaning_of_is_per_parameter():
    travel = specs("travel")
    m = meaning_of("register_credit_card", "expiration_date", travel["register_credit_card"].properties["expiration_date"])
    assert m.fmt == "month_year" and not m.accepts("554129717921") and m.accepts("01/2030")
    assert not meaning_of("x", "status", {"type": "string"}).accepts("Ticket 3 has been closed successfully.")


def test_a_resolution_is_not_an_earlier_title_and_opposites_do_not_match():
    from funreason_pipeline.matching.names import affinity

    tickets = specs("tickets")
    results = harvest({"id": 887, "title": "Software license expired", "description": "It expired."}, source=0,
                      producer="create_ticket")
    for args in proposals(tickets["resolve_ticket"], results):
        assert args["resolution"] not in ("Software license expired", "It expired."), args
    assert affinity("user_first_name", "The first name of the user", "user_last_name") == 0
    assert affinity("max_price", "Maximum price", "min_price") == 0 and affinity("first_name", "", "first_name") == 1


def test_ids_and_secrets_are_generated_as_ids_and_secrets():
    travel = specs("travel")
    for args in proposals(travel["authenticate_travel"]):
        assert " " not in args["client_id"] and " " not in args["client_secret"] and " " not in args["refresh_token"]


def test_quality_reports_the_argument_format_share():
    from funreason_pipeline import quality

    props = specs("travel")["register_credit_card"].properties
    call = {"tool": "register_credit_card", "arguments": {"card_number": "4111111111111111",
                                                          "expiration_date": "554129717921"}}
    q = quality.QualityInput(trajectories=[("travel", [{"target_tool": "register_credit_card", "calls": [call]}])],
                             parameters={"travel": {"register_credit_card": props}})
    stats = quality.quality_stats(q)
    assert stats["argument_format_share"] == 0.5 and stats["arguments_with_a_format"] == 2
    assert "argument values in their described format 0.500 of 2" in quality.summary_lines(stats)[-1]


def test_people_get_names_folders_get_folder_names_and_logins_get_handles():
    from funreason_pipeline.matching.meaning import fits_name, names_a_person

    assert names_a_person("user_name") and names_a_person("cardholder_name") and names_a_person("first_name")
    assert not names_a_person("username") and not names_a_person("file_name") and not names_a_person("name")
    assert not fits_name("user_name", "USR002") and fits_name("user_name", "Nora Tanaka")
    assert not fits_name("dir_name", "inventory.csv") and fits_name("dir_name", "reports")
    assert fits_name("file_name", "inventory.csv")
    # offered an id, a person's-name parameter takes a name instead
    messages = specs("messages")
    results = harvest({"user_id": "USR002"}, source=0, producer="get_user_id")
    for args in proposals(messages["add_contact"], results):
        assert not any(c.isdigit() for c in args["user_name"]), args
    # offered a file's name, mkdir makes a folder with a folder's name
    files = specs("files")
    results = harvest({"current_directory_content": ["inventory.csv", "notes.txt"]}, source=0, producer="ls")
    for args in proposals(files["mkdir"], results):
        assert "." not in args["dir_name"], args
    # a ticket system's login handle reads like one ("rosa_okafor"), not like two random words
    tickets = specs("tickets")
    for args in proposals(tickets["ticket_login"]):
        assert " " not in args["username"] and any(c in args["username"] for c in "_."), args


def test_bounds_come_in_order_labels_hold_no_ids_and_list_items_are_distinct():
    from funreason_pipeline.matching.arguments import _order_bounds
    from funreason_pipeline.matching.meaning import fits_name

    args, sources, fields = {"min_price": 810.4, "max_price": 126.7}, {"min_price": 3}, {"min_price": "price"}
    _order_bounds(args, sources, fields)
    assert args == {"min_price": 126.7, "max_price": 810.4} and sources == {"max_price": 3}
    dates = {"start_date": "2026-05-02", "end_date": "2026-04-01"}
    _order_bounds(dates, {}, {})
    assert dates == {"start_date": "2026-04-01", "end_date": "2026-05-02"}
    assert not fits_name("order_type", "55212") and fits_name("order_type", "Buy")
    trading = specs("trading")
    results = harvest({"stocks": ["AAPL", "NVDA"], "price": 126.7}, source=0, producer="get_stock_info") + harvest(
        {"price": 810.4}, source=1, producer="get_stock_info")
    for args in proposals(trading["filter_stocks_by_price"], results):
        if "min_price" in args and "max_price" in args:
            assert args["min_price"] <= args["max_price"], args
    twitter = specs("twitter")
    results = harvest({"username": "alindqvist62"}, source=0, producer="get_tweet") + harvest(
        {"username": "alindqvist62"}, source=1, producer="get_tweet")
    for args in proposals(twitter["mention"], results):
        names = args.get("mentioned_usernames", [])
        assert len(names) == len(set(names)), args


def test_prose_is_not_a_login_or_a_file_and_a_person_is_not_a_file():
    from funreason_pipeline.matching.meaning import fits_name, is_handle

    assert is_handle("nurse_ola") and is_handle("notes.txt") and not is_handle("Thanks for the help!")
    assert not fits_name("user_name", "references.bib") and fits_name("user_name", "J. R. Smith")
    messages = specs("messages")
    results = harvest({"username": "nurse_ola", "files": ["notes.txt"], "order_type": "Sell", "symbol": "GOOG"},
                      source=0, producer="login")
    for args in proposals(messages["send_message"], results):
        assert not is_handle(args["message"]) and len(args["message"].split()) >= 2, args
    tickets = specs("tickets")
    results = harvest({"current_directory_content": ["notes.txt", "q3_report.pdf"]}, source=0, producer="ls")
    for args in proposals(tickets["create_ticket"], results):
        assert not is_handle(args["title"]), args


def test_a_list_comes_from_one_result_or_from_the_user_never_a_mix():
    twitter = specs("twitter")
    shown = harvest([{"id": 0, "mentions": ["@xdubois54", "@isaac_writes"]}], source=4, producer="get_user_tweets")
    other = harvest([{"id": 1, "mentions": ["@olivia_horvat"]}], source=6, producer="get_tweet")
    unseen = harvest({"tweets": {"5": {"mentions": ["@mira", "@rahul"]}}})  # the state, not in any result
    provider = ArgumentProvider(optional_rate=1.0)
    for s in SEEDS:
        got = provider.propose(twitter["post_tweet"], shown + other, unseen, random.Random(s))
        args, sources = got.args, got.sources
        names = args.get("mentions") or []
        if "mentions" in sources:
            allowed = {4: {"@xdubois54", "@isaac_writes"}, 6: {"@olivia_horvat"}}[sources["mentions"]]
            assert set(names) <= allowed, (args, sources)
        else:
            assert not set(names) & {"@xdubois54", "@isaac_writes", "@olivia_horvat"}, (args, sources)


def test_a_folder_never_fills_a_files_parameter_and_a_file_never_a_folders():
    """`diff(file_name1="config", file_name2="home")` with both directories asked for nothing: a listing
    names files and folders alike, the state tells them apart (entries holding `contents` are folders)."""
    from funreason_pipeline.matching.meaning import fits_kind
    from funreason_pipeline.matching.values import entry_kind

    assert not fits_kind("file_name1", "directory") and fits_kind("file_name1", "file")
    assert not fits_kind("folder", "file") and fits_kind("folder", "directory")
    assert fits_kind("file_name", "") and fits_kind("source", "directory")  # unknown, or not a file parameter
    assert entry_kind({"name": "a", "contents": {}}) == "directory" and entry_kind({"content": "x"}) == "file"
    assert entry_kind({"type": "directory"}) == "directory" and entry_kind({"id": 3}) == ""
    files = specs("files")
    tree = {"root": {"name": "alex", "contents": {
        "config": {"name": "config", "contents": {}}, "home": {"name": "home", "contents": {}},
        "notes.txt": {"name": "notes.txt", "content": "a"}, "todo.txt": {"name": "todo.txt", "content": "b"}}}}
    state = harvest({"GorillaFileSystem": tree})
    results = harvest({"current_directory_content": ["config", "home", "notes.txt", "todo.txt"]}, source=0,
                      producer="ls")
    fed = {("diff", p): {("ls", "current_directory_content")} for p in ("file_name1", "file_name2")}
    for args in proposals(files["diff"], results, state, provider=ArgumentProvider(data_fields=fed)):
        assert not {args["file_name1"], args["file_name2"]} & {"config", "home"}, args
    for args in proposals(files["cd"], results, state):
        assert args["folder"] not in ("notes.txt", "todo.txt"), args
    # the same listing without the state: nothing tells them apart, and a folder may be proposed
    seen = {v for args in proposals(files["diff"], results, provider=ArgumentProvider(data_fields=fed))
            for v in args.values()}
    assert seen & {"config", "home"}, seen
