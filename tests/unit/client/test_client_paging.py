"""Paging helpers of the management CLI: the cursor of a Link header, the option parameter, page sizes."""

from __future__ import annotations

from ditto_compat.client.api import entity_path
from ditto_compat.client.paging import _page_size, next_cursor_of_link, page_option


def test_next_cursor_comes_from_the_rel_next_link() -> None:
    link = '<http://internal:8080/api/2/things?option=size%2825%29%2Ccursor%28b3JnLmFjbWU6YQ%29>; rel="next"'
    assert next_cursor_of_link(link) == "b3JnLmFjbWU6YQ"
    unquoted = "<http://h/api/2/things?namespaces=a&option=cursor(XYZ),size(5)>; rel=next"
    assert next_cursor_of_link(unquoted) == "XYZ"


def test_no_cursor_on_the_last_page() -> None:
    assert next_cursor_of_link(None) is None
    assert next_cursor_of_link("") is None
    assert next_cursor_of_link('<http://h/api/2/things?option=size(5)>; rel="prev"') is None
    assert next_cursor_of_link('<http://h/api/2/things?option=size(5)>; rel="next"') is None


def test_page_option_joins_sort_size_and_cursor() -> None:
    assert page_option(None) is None
    assert page_option(10) == "size(10)"
    assert page_option(10, "C") == "size(10),cursor(C)"
    assert page_option(None, None, "+thingId") == "sort(+thingId)"
    assert page_option(5, None, "-_modified") == "sort(-_modified),size(5)"


def test_page_size_never_asks_for_more_than_is_still_wanted() -> None:
    assert _page_size(None, None, 0) is None
    assert _page_size(50, None, 100) == 50
    assert _page_size(50, 20, 0) == 20
    assert _page_size(50, 120, 100) == 20
    assert _page_size(None, 10, 0) == 10
    # the server's default page is as good as any when many are wanted
    assert _page_size(None, 1000, 0) is None


def test_entity_path_encodes_ids_and_each_path_segment() -> None:
    assert entity_path("things", "org.acme:s1") == "/api/2/things/org.acme:s1"
    assert (
        entity_path("things", "org.acme:s1", "/features/temperature/")
        == "/api/2/things/org.acme:s1/features/temperature"
    )
    assert (
        entity_path("things", "org.acme:a b", "attributes/x#y")
        == "/api/2/things/org.acme:a%20b/attributes/x%23y"
    )
    assert entity_path("connections", "c-1", "status") == "/api/2/connections/c-1/status"
