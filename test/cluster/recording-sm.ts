/**
 * A state machine for cluster tests: it keeps every command it applied, in order, so a
 * test can check that all replicas applied the same commands in the same order and that
 * every acknowledged write is there. Query 'all' returns the list; 'count' its length.
 * A command 'boom' throws, to test that a failing onApply stops the node's applying.
 * It also records braft's role callbacks; query 'events' returns them.
 */

import fs from 'node:fs';
import path from 'node:path';
import type {
  ApplyIterator,
  SnapshotReader,
  SnapshotWriter,
  StateMachine,
  Value,
} from '../../src/main/state-machine.js';

const decoder = new TextDecoder();

export default class RecordingStateMachine implements StateMachine {
  private applied: string[] = [];
  private readonly events: string[] = [];
  /** Commands applied since this process started (a snapshot load is not counted). */
  private appliedSinceStart = 0;

  onSnapshotSave(writer: SnapshotWriter): void {
    fs.writeFileSync(path.join(writer.dir, 'applied.json'), JSON.stringify(this.applied));
  }

  onSnapshotLoad(reader: SnapshotReader): void {
    this.applied = JSON.parse(fs.readFileSync(path.join(reader.dir, 'applied.json'), 'utf8')) as string[];
    this.events.push(`snapshotLoad ${reader.meta.index}`);
  }

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

  onConfigurationCommitted(conf: { voters: string[]; learners: string[] }): void {
    this.events.push(`configuration voters=${conf.voters.join(',')} learners=${conf.learners.join(',')}`);
  }

  onApply(iter: ApplyIterator): void {
    for (const it of iter) {
      const command = decoder.decode(it.data());
      if (command === 'boom') throw new Error('boom: the test state machine was told to fail');
      this.applied.push(command);
      this.appliedSinceStart++;
      it.done(this.applied.length);
    }
  }

  query(q: Value): Value {
    if (q === 'count') return this.applied.length;
    if (q === 'all') return this.applied;
    if (q === 'events') return this.events;
    if (q === 'appliedSinceStart') return this.appliedSinceStart;
    throw new Error(`unknown query ${String(q)}`);
  }
}
