/**
 * A state machine for cluster tests: it keeps every command it applied, in order, so a
 * test can check that all replicas applied the same commands in the same order and that
 * every acknowledged write is there. Query 'all' returns the list; 'count' its length.
 * A command 'boom' throws, to test that a failing onApply stops the node's applying.
 * It also records braft's role callbacks; query 'events' returns them.
 */

import type { ApplyIterator, StateMachine, Value } from '../../src/main/state-machine.js';

const decoder = new TextDecoder();

export default class RecordingStateMachine implements StateMachine {
  private readonly applied: string[] = [];
  private readonly events: string[] = [];

  onLeaderStart(term: number): void {
    this.events.push(`leaderStart ${term}`);
  }

  onLeaderStop(status: { code: string }): void {
    this.events.push(`leaderStop ${status.code}`);
  }

  onStartFollowing(ctx: { leaderId: string; term: number }): void {
    this.events.push(`startFollowing ${ctx.leaderId} ${ctx.term}`);
  }

  onStopFollowing(ctx: { leaderId: string; term: number }): void {
    this.events.push(`stopFollowing ${ctx.leaderId} ${ctx.term}`);
  }

  onApply(iter: ApplyIterator): void {
    for (const it of iter) {
      const command = decoder.decode(it.data());
      if (command === 'boom') throw new Error('boom: the test state machine was told to fail');
      this.applied.push(command);
      it.done(this.applied.length);
    }
  }

  query(q: Value): Value {
    if (q === 'count') return this.applied.length;
    if (q === 'all') return this.applied;
    if (q === 'events') return this.events;
    throw new Error(`unknown query ${String(q)}`);
  }
}
