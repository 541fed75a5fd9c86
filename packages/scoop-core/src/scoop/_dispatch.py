"""The broker's hand-outs: queued tasks to idle workers, and the word that workers are idle.

:class:`Dispatch` is a part of :class:`scoop._broker.Broker` (a mixin, for the size of the
module). An idle worker says how many tasks it would take at once, its appetite
(scoop._balance: as many as it ran in a millisecond lately, one while it does not know); the
broker keeps it with the worker on its list of hungry workers.

Queued tasks go out at once, to the workers hungry longest first: the queue split evenly among
the hungry workers, but a worker given any gets at least its appetite (as many as are left).
So a large queue is shared by every idle worker, tasks of a millisecond or more go one a worker
to as many workers as they can, and tiny ones travel several a message instead of one message
each to a crowd of idle workers (which would cost the broker a message per task: with 1024
idle workers, a batch of 32 tiny tasks would become 32 messages). Each TASKS message says how
many workers are still hungry afterwards: the receiver keeps its appetite and hands the rest of
what it holds to them (steal-half, scoop._balance).

A worker that goes idle and is given nothing makes the broker tell the workers that may believe
nobody is idle how many are (DEMAND): see :meth:`Dispatch._announce_demand`. A worker that hands
out tasks, keeps some queued, and leaves workers idle is told how many (DEMAND): see
:meth:`Dispatch._tell_demand_left`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

from scoop._balance import MAX_APPETITE
from scoop._protocol import Entry, Kind


class Dispatch:
    """Hand-outs to idle workers; mixed into the broker, whose state it uses."""

    # The broker's state this part reads and changes (see scoop._broker.Broker).
    queue: deque[Entry]
    #: Workers that asked for tasks and got none yet, in arrival order, with their appetites.
    hungry: dict[int, int]
    holder: dict[int, int]
    uninformed: dict[int, None]
    coming: dict[int, set[int]]
    results_out: dict[int, list[Entry]]

    def _send(self, index: int, kind: Kind, arg: int = 0, entries: Sequence[Entry] = ()) -> None:
        raise NotImplementedError

    # Of scoop._departures.Departures, which comes after this part in the broker's bases.
    keeps_from_root: Callable[[], bool]
    _take_innocent: Callable[[int], list[Entry]]

    def _now_idle(self, index: int, appetite: int = 1) -> None:
        """Worker ``index`` is idle, would take ``appetite`` tasks: give it queued ones if any."""
        if index in self.coming:
            return  # tasks sent to it directly are on their way: it will ask again
        self.hungry[index] = min(max(1, appetite), MAX_APPETITE)
        self._dispatch()

    def _dispatch(self) -> None:
        """Give queued tasks to hungry workers: an even split, but at least an appetite each.

        Each TASKS message says how many workers are still hungry afterwards (its ``arg``): the
        receiver's idea of the demand, which it may meet from its own queue.
        """
        queue, hungry = self.queue, self.hungry
        if not queue or not hungry:
            return
        batches: list[tuple[int, list[Entry]]] = []
        waiting = len(hungry)
        # No copy of the hungry workers: only those given tasks are visited (and removed after).
        for index, appetite in hungry.items():
            if not queue:
                break
            share = max(math.ceil(len(queue) / waiting), appetite)
            if index == 0 and self.keeps_from_root():
                batch = self._take_innocent(share)
                if not batch:
                    continue  # the root stays hungry
            else:
                batch = [queue.popleft() for _ in range(min(share, len(queue)))]
            waiting -= 1
            batches.append((index, batch))
        holder = self.holder
        for index, batch in batches:
            del hungry[index]
            for entry in batch:
                holder[entry.id] = index
        still_hungry = len(hungry)
        for index, batch in batches:
            self._send(index, Kind.TASKS, still_hungry, batch)

    def _tell_demand_left(self, sender: int) -> None:
        """Worker ``sender`` handed out tasks, still holds some, and workers are still idle.

        It handed out as many as the demand it knew of called for, and that may have been
        less than the number idle: a worker once told that some are idle is not told again
        each time one more goes idle (see :meth:`_announce_demand`). Told how many this
        hand-out left idle, it hands them more at once, where it would otherwise run them one
        after the other while they wait.
        """
        self._send(sender, Kind.DEMAND, len(self.hungry))

    def _announce_demand(self, requester: int) -> None:
        # Only if the requester is still waiting (it was given no task). Every other worker
        # that may believe nobody is idle is told, hungry ones included: a worker idle now may
        # have tasks to hand out later, and it keeps the demand in mind until it does. The
        # others know already (a DEMAND, or the arg of a TASKS or RESULTS, said some worker
        # is idle, and they handed nothing out since): those just given tasks are among them
        # unless that arg was 0. So a worker going idle costs a DEMAND per worker that learnt
        # otherwise since the last one went idle, not one per worker of the run.
        if requester not in self.hungry:
            return
        demand = len(self.hungry)
        held = self.results_out  # those learn it from their RESULTS' arg, about to go
        for index in [i for i in self.uninformed if i != requester and i not in held]:
            self._send(index, Kind.DEMAND, demand)


__all__ = ["Dispatch"]
