"""The shortcuts of the push hot path give exactly what the general code gives: compact
notifications (kept by their attributes while queued behind a backlog, elements made again on
demand), the acknowledgements of a run built in one string, and the pushes of a run gathered
in one event."""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET
from typing import List, Optional

import pytest

from yaxmpp.protocol import stanzas
from yaxmpp.delivery import COMPACT_BACKLOG, Delivery
from yaxmpp.protocol.disk import Notification, compact_notifications
from yaxmpp.protocol.events import PushesReceived
from yaxmpp.protocol.xmltext import to_xml
from yaxmpp.testing.server import query_xml

from .core_harness import established

USUAL = query_xml([{"type": "new", "key": "/disk/a.txt", "fid": "1", "size": "12"}], {"ts": "7"})
TWO_OPS = query_xml([{"type": "deleted", "key": "/disk/a"}, {"type": "new", "key": "disk:/b", "size": "x"}])
NS = "xmlns='yandex:push:disk'"
UNUSUAL = [
    "<query %s/>" % NS,  # no diff
    "<query %s><diff/></query>" % NS,  # no op
    "<query %s><diff><op type='new'/></diff><extra/></query>" % NS,  # another child
    "<query %s><diff a='1'><op type='new'/></diff></query>" % NS,  # attributes on the diff
    "<query %s><diff><op type='new'><x/></op></diff></query>" % NS,  # an op with a child
    "<query %s><diff><op type='new'>text</op></diff></query>" % NS,  # text
    "<query %s> <diff><op type='new'/></diff></query>" % NS,  # whitespace
    "<query %s><diff><op type='new'/> </diff></query>" % NS,  # a tail
    "<query %s><diff><op type='new'/><other/></diff></query>" % NS,  # another element among the ops
    "<query %s><op type='new'/></query>" % NS,  # an op outside a diff
    "<query xmlns='yandex:push:disk'><diff xmlns='other'><op type='new'/></diff></query>",  # another namespace
]


def notifications(queries: List[ET.Element], at: float, ids: List[str], senders: List[Optional[str]]) -> List[Notification]:
    made = [Notification(q, at, i, s) for q, i, s in zip(queries, ids, senders)]
    compact_notifications(made)
    return made


def _pair(xml: str) -> "tuple[Notification, Notification]":
    """The same push compacted (as queued behind a backlog) and as made."""
    made = notifications([ET.fromstring(xml)], 5.0, ["id1"], ["ya.ru"])[0]
    plain = Notification(ET.fromstring(xml), 5.0, "id1", "ya.ru")
    return made, plain


@pytest.mark.parametrize("xml", [USUAL, TWO_OPS] + UNUSUAL)
def test_a_notification_from_the_driver_is_the_same_as_one_made_directly(xml: str) -> None:
    made, plain = _pair(xml)
    assert made.changes == plain.changes
    assert [c.attrs for c in made.changes] == [c.attrs for c in plain.changes]
    assert dict(made.attrs) == dict(plain.attrs)
    assert made.xml == plain.xml == to_xml(ET.fromstring(xml))
    assert repr(made) == repr(plain)
    assert (made.received_at, made.iq_id, made.sender) == (plain.received_at, plain.iq_id, plain.sender)
    assert ET.tostring(made.element) == ET.tostring(plain.element)
    assert made.element is made.element  # made once, then kept


def test_the_usual_pushes_are_kept_compact_and_the_others_whole() -> None:
    usual = notifications([ET.fromstring(USUAL), ET.fromstring(TWO_OPS)], 1.0, ["a", "b"], [None, None])
    assert all(n._attrs is not None and n._element is None for n in usual)
    others = notifications([ET.fromstring(x) for x in UNUSUAL], 1.0, ["i"] * len(UNUSUAL), [None] * len(UNUSUAL))
    assert all(n._attrs is None and n._element is not None for n in others)


def test_a_queued_compact_notification_is_one_object_for_the_collector() -> None:
    made = notifications([ET.fromstring(USUAL)], 1.0, ["a"], [None])[0]
    gc.collect()
    tracked = [o for o in gc.get_referents(made) if gc.is_tracked(o) and not isinstance(o, type)]
    assert tracked == []  # (a parsed query is three tracked elements)
    plain = Notification(ET.fromstring(USUAL), 1.0)
    assert [o for o in gc.get_referents(plain) if gc.is_tracked(o) and not isinstance(o, type)]
    several = notifications([ET.fromstring(TWO_OPS)], 1.0, ["a"], [None])[0]
    gc.collect()
    assert len([o for o in gc.get_referents(several) if gc.is_tracked(o) and not isinstance(o, type)]) == 1


def test_changes_come_straight_from_the_attributes_without_making_the_element() -> None:
    made = notifications([ET.fromstring(TWO_OPS)], 1.0, ["a"], [None])[0]
    assert [c.type for c in made.changes] == ["deleted", "new"]
    assert made.changes[1].disk_path == "/b" and made.changes[1].size is None
    assert made._element is None  # changes, attrs and repr do not need it
    repr(made)
    dict(made.attrs)
    assert made._element is None


def test_setting_the_element_replaces_the_compact_form() -> None:
    made = notifications([ET.fromstring(USUAL)], 1.0, ["a"], [None])[0]
    other = ET.fromstring(TWO_OPS)
    made.element = other
    assert made.element is other
    assert len(made.changes) == 2


def test_a_notification_already_looked_at_is_not_compacted() -> None:
    seen = Notification(ET.fromstring(USUAL), 1.0)
    seen.changes
    compact_notifications([seen, "not a notification"])
    assert seen._element is not None


def test_the_queue_compacts_what_comes_behind_a_backlog() -> None:
    delivery = Delivery(10 * COMPACT_BACKLOG, None, False, "test")
    delivery.reopen()
    batch = [Notification(ET.fromstring(USUAL), 1.0, str(i)) for i in range(COMPACT_BACKLOG)]
    assert delivery.put_notifications(batch) == COMPACT_BACKLOG
    assert all(n._element is not None for n in batch)  # the consumer keeps up: left whole
    late = [Notification(ET.fromstring(USUAL), 1.0, "late%d" % i) for i in range(3)]
    assert delivery.put_notifications(late) == 3
    assert all(n._element is None for n in late)
    taken = [delivery.take(0) for _ in range(COMPACT_BACKLOG + 3)]
    assert [n.iq_id for n in taken[-3:]] == ["late0", "late1", "late2"]
    assert taken[-1].changes[0].path == "/disk/a.txt" and taken[-1].xml == taken[0].xml


def test_a_full_queue_takes_what_fits_and_counts_the_rest() -> None:
    delivery = Delivery(5, None, False, "test")
    delivery.reopen()
    assert delivery.put_notifications(iter(range(3))) == 3
    assert delivery.put_notifications([3, 4, 5, 6]) == 2
    assert delivery.put_notifications([7]) == 0
    assert delivery.refused == 3 and len(delivery) == 5
    assert [delivery.take(0) for _ in range(5)] == [0, 1, 2, 3, 4]


# -- acknowledgements -------------------------------------------------------------------------


@pytest.mark.parametrize("to", [None, "ya.ru", "a&b<c>\"d"])
@pytest.mark.parametrize("ids", [["push_1"], ["a", "b", "c"], ["x" * 40] * 3])
def test_iq_results_is_the_iq_results_one_by_one(to: Optional[str], ids: List[str]) -> None:
    assert stanzas.iq_results(to, ids) == "".join(stanzas.iq_result(to, i) for i in ids)


@pytest.mark.parametrize("ids", [[], ["a", ""], ['a"b'], ["a<"], ["a\nb"], ["&"]])
def test_iq_results_leaves_ids_that_need_care_to_the_slow_path(ids: List[str]) -> None:
    assert stanzas.iq_results("ya.ru", ids) is None


def _run(ids: List[str], senders: List[Optional[str]]) -> PushesReceived:
    run = PushesReceived()
    run.iq_ids.extend(ids)
    run.senders.extend(senders)
    return run


def _expected(ids: List[str], senders: List[Optional[str]], taken: int) -> bytes:
    parts = [stanzas.iq_result(s, i) for i, s in zip(ids[:taken], senders[:taken]) if i]
    parts += [stanzas.iq_error(s, i, "resource-constraint", "wait") for i, s in zip(ids[taken:], senders[taken:]) if i]
    return "".join(parts).encode()


@pytest.mark.parametrize(
    "ids, senders, taken",
    [
        (["p1", "p2", "p3"], ["ya.ru"] * 3, 3),  # the fast path
        (["p1", "p2", "p3"], [None] * 3, 3),
        (["p1", "p2", "p3"], ["ya.ru", None, "ya.ru"], 3),  # senders differ
        (["p1", "p2", "p3"], ["ya.ru"] * 3, 2),  # one refused
        (["p1", "", "p3"], ["ya.ru"] * 3, 3),  # an empty id gets no answer
        (["p&1", "p2"], ["ya.ru"] * 2, 2),  # an id that needs escaping
    ],
)
def test_acknowledging_a_run_writes_what_one_by_one_would(ids: List[str], senders: List[Optional[str]], taken: int) -> None:
    driver = established()
    core = driver.proto
    core.acknowledge_all(_run(ids, senders), taken)
    assert core.data_to_send() == _expected(ids, senders, taken)


def test_a_run_of_pushes_is_one_event_and_every_push_waits_for_its_answer() -> None:
    driver = established()
    pushes = "".join(
        "<iq type='set' id='%s' from='ya.ru'>%s</iq>" % (i, USUAL) for i in ("a", "b", "c")
    ).encode()
    events = driver.feed(pushes + b"<iq type='result' id='nothing-asked'/>" + pushes.replace(b"id='", b"id='x"))
    runs = [e for e in events if isinstance(e, PushesReceived)]
    assert len(runs) == 1 and runs[0].iq_ids == ["a", "b", "c", "xa", "xb", "xc"]
    assert driver.proto._unacked == {"a", "b", "c", "xa", "xb", "xc"}
    driver.proto.acknowledge_all(runs[0], 6)
    assert driver.proto._unacked == set()
