"""Many processes writing one story at once: nothing lost, nothing doubled, nothing half-written."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3

import pytest

from relay.story_store import StaleHeadError, StoryStore

# "spawn": the pytest process may have threads, and fork() would copy their locks mid-use.
CTX = multiprocessing.get_context("spawn")
JOIN_TIMEOUT = 120
pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL


def _append_many(path, story_id, writer, count, start):
    start.wait()
    with StoryStore(path) as store:
        for i in range(count):
            store.add_paragraph(story_id, f"{writer}:{i}", writer)


def _race_rounds(path, story_id, name, rounds, barrier, results):
    outcomes = []
    with StoryStore(path) as store:
        for r in range(rounds):
            barrier.wait()  # the previous round is over for everyone
            head = store.head(story_id)
            seen = head.id if head else 0
            barrier.wait()  # everyone has read the same head; now all write at once
            try:
                p = store.add_paragraph(story_id, f"{name} round {r}", name, expected_head=seen)
                outcomes.append(("won", r, seen, p.id))
            except StaleHeadError as exc:
                outcomes.append(("stale", r, seen, exc.head.id if exc.head else None))
    results.put((name, outcomes))


def _write_until_killed(path, story_id, pipe):
    with StoryStore(path) as store:
        i = 0
        while True:
            p = store.add_paragraph(story_id, f"줄 {i} " + "가나다라" * 50, "writer", meta={"i": i})
            pipe.send((p.id, p.seq, p.text))
            i += 1


def _run(processes):
    for p in processes:
        p.start()
    for p in processes:
        p.join(JOIN_TIMEOUT)
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_eight_processes_appending_at_once_lose_and_repeat_nothing(db):
    writers, count = 8, 100
    with StoryStore(db.target) as store:
        story = store.create_story("모두의 이야기", "host", turn_rule="free")
    start = CTX.Barrier(writers)
    _run([
        CTX.Process(target=_append_many, args=(str(db.target), story.id, f"w{n}", count, start))
        for n in range(writers)
    ])
    with StoryStore(db.target) as store:
        timeline = store.timeline(story.id)
        assert store.get_story(story.id).paragraph_count == writers * count
    assert [p.seq for p in timeline] == list(range(1, writers * count + 1))
    texts = [p.text for p in timeline]
    assert sorted(texts) == sorted(f"w{n}:{i}" for n in range(writers) for i in range(count))
    for n in range(writers):
        own = [p.text for p in timeline if p.author == f"w{n}"]
        assert own == [f"w{n}:{i}" for i in range(count)], "a writer's paragraphs are out of its order"
    # The writers really overlapped: somebody's run was interrupted by somebody else's.
    assert any(a.author != b.author for a, b in zip(timeline, timeline[1:]))


def test_writers_racing_on_the_same_head_let_exactly_one_win_each_time(db):
    racers, rounds = 4, 15
    with StoryStore(db.target) as store:
        story = store.create_story("경주", "host", turn_rule="free")
    barrier, results = CTX.Barrier(racers), CTX.Queue()
    processes = [
        CTX.Process(target=_race_rounds, args=(str(db.target), story.id, f"r{n}", rounds, barrier, results))
        for n in range(racers)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=JOIN_TIMEOUT) for _ in processes]
    for p in processes:
        p.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in processes] == [0] * racers

    by_round = {r: [] for r in range(rounds)}
    for name, rows in outcomes:
        for kind, r, seen, pid in rows:
            by_round[r].append((kind, seen, pid, name))
    with StoryStore(db.target) as store:
        timeline = store.timeline(story.id)
        version = store.version(story.id)
    assert len(timeline) == rounds and version == rounds
    previous = 0
    for r, paragraph in enumerate(timeline):
        entries = by_round[r]
        winners = [e for e in entries if e[0] == "won"]
        assert len(winners) == 1, f"round {r}: {entries}"
        assert all(seen == previous for _, seen, _, _ in entries), "racers did not share a head"
        _, _, winner_id, winner = winners[0]
        assert (paragraph.id, paragraph.text, paragraph.seq) == (winner_id, f"{winner} round {r}", r + 1)
        # Every loser was told about the winner's paragraph.
        assert all(pid == winner_id for kind, _, pid, _ in entries if kind == "stale")
        previous = winner_id


def test_threads_racing_on_the_same_head_let_exactly_one_win_each_time(db):
    import threading

    racers, rounds = 6, 10
    with StoryStore(db.target) as store:
        story = store.create_story("경주", "host", turn_rule="free")
        barrier = threading.Barrier(racers)
        wins, stale = [], []

        def race(name):
            for r in range(rounds):
                barrier.wait()
                head = store.head(story.id)
                barrier.wait()
                try:
                    wins.append((r, store.add_paragraph(story.id, f"{name}/{r}", name, expected_head=head.id if head else 0)))
                except StaleHeadError as exc:
                    stale.append((r, exc.head))

        threads = [threading.Thread(target=race, args=(f"t{n}",)) for n in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_TIMEOUT)
        assert sorted(r for r, _ in wins) == list(range(rounds))
        assert len(stale) == rounds * (racers - 1)
        winner_of = dict(wins)
        assert all(head == winner_of[r] for r, head in stale)
        assert store.timeline(story.id) == [winner_of[r] for r in range(rounds)]


@pytest.mark.parametrize("attempt", range(3))
def test_a_writer_killed_mid_loop_leaves_a_sound_database_with_every_confirmed_paragraph(db, attempt):
    with StoryStore(db.target) as store:
        story = store.create_story("정전", "host", turn_rule="free")
    receiver, sender = CTX.Pipe(duplex=False)
    writer = CTX.Process(target=_write_until_killed, args=(str(db.target), story.id, sender))
    writer.start()
    sender.close()
    confirmed = []
    wanted = random.Random(attempt).randint(20, 80)
    while len(confirmed) < wanted:
        assert receiver.poll(JOIN_TIMEOUT), "the writer stopped writing"
        confirmed.append(receiver.recv())
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(JOIN_TIMEOUT)
    assert writer.exitcode == -signal.SIGKILL
    # What the writer confirmed before dying is still in the pipe.
    while True:
        try:
            confirmed.append(receiver.recv())
        except EOFError:
            break

    if db.backend == "sqlite":
        with sqlite3.connect(db.target) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with StoryStore(db.target) as store:
        stored = {p.id: (p.id, p.seq, p.text) for p in store.timeline(story.id)}
        assert [stored.get(c[0]) for c in confirmed] == confirmed
        assert sorted(p[1] for p in stored.values()) == list(range(1, len(stored) + 1))
        # The killed writer left no lock behind: others can go on writing.
        after = store.add_paragraph(story.id, "계속", "survivor", expected_head=max(stored))
        assert after.seq == len(stored) + 1
