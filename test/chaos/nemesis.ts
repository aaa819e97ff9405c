/**
 * The nemesis of a chaos run: a fault schedule drawn from the seed (`planFaults`, pure:
 * the same seed gives the same schedule) and the executor that applies it to a running
 * cluster (`Nemesis`), one fault at a time, each healed before the next.
 *
 * The schedule is a sequence of rounds; each round is a seeded shuffle of every fault
 * kind (kill, pause, partition, delay, disk), so every kind comes once in the first round,
 * which takes at most about 35 s: a run of 60 s sees every kind. Variants rotate within
 * their kind (the disk faults through torn tail, flipped tail byte, flipped middle byte,
 * full disk and slow disk in a seeded order; partitions through isolating a node, the
 * leader, a bridge and, with 5 nodes, a minority split). A step names its target by role
 * ("the leader", "a follower"): which node that is depends on the run, so the seed fixes
 * the schedule, not the node ids.
 *
 * `--faults` may leave kinds out; the others keep the steps they have with every kind.
 *
 * Counting: `kill` counts kill -9 + restart; `pause` SIGSTOP/SIGCONT; `partition` cut or
 * hung links; `delay` slow links (not in the summary line's `faults=`, which names kill,
 * pause, partition and disk); `disk` every disk fault, although each also kills and
 * restarts the node (those kills are not counted under `kill`).
 */

import { Rng } from '../../src/raft/rng.js';
import { type ChaosCluster, type ChaosNode, StartError, type StartOptions, sleep } from './cluster.js';
import {
  type DiskFaultReport,
  fileSizeLimitFor,
  flipMiddleByte,
  plantFlippedTail,
  plantTornTail,
} from './disk-faults.js';

export type FaultKind = 'kill' | 'pause' | 'partition' | 'delay' | 'disk';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'partition', 'delay', 'disk'];
export type DiskVariant = 'torn-tail' | 'flip-tail' | 'flip-middle' | 'full-disk' | 'slow-disk';
export const DISK_VARIANTS: readonly DiskVariant[] = [
  'torn-tail',
  'flip-tail',
  'flip-middle',
  'full-disk',
  'slow-disk',
];
export type PartitionVariant = 'isolate-node' | 'isolate-leader' | 'bridge' | 'split';

/** One planned fault. */
export interface FaultStep {
  readonly kind: FaultKind;
  /** kill/pause/delay/slow disk: which node; partition and disk: the variant. */
  readonly variant: string;
  readonly target: 'leader' | 'follower' | 'any';
  /** How long the fault lasts (a killed node stays down this long). */
  readonly holdMs: number;
  /** Quiet time after healing, before the next fault. */
  readonly gapMs: number;
  /** Chooses among candidate nodes and bytes, at run time. */
  readonly pick: number;
  /** Partitions: reset connections, or hang them silently. */
  readonly mode: 'cut' | 'hang';
  /** Delay: ms per chunk; slow disk: ms before each fdatasync. */
  readonly amount: number;
  /** Delay: up to this much more per chunk. */
  readonly jitter: number;
}

function shuffle<T>(rng: Rng, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * The fault schedule of `seed`: enough steps to fill `durationMs` twice over (the
 * executor stops at the duration).
 */
export function planFaults(
  seed: number,
  durationMs: number,
  nodes: number,
  kinds: readonly FaultKind[] = FAULT_KINDS,
): FaultStep[] {
  if (kinds.length === 0) return [];
  const rng = new Rng((seed ^ 0x6e656d65) >>> 0);
  const disks = shuffle(rng, DISK_VARIANTS);
  const partitions = shuffle<PartitionVariant>(
    rng,
    nodes >= 5
      ? ['isolate-node', 'isolate-leader', 'bridge', 'split']
      : ['isolate-node', 'isolate-leader', 'bridge'],
  );
  let disk = 0;
  let partition = 0;
  const steps: FaultStep[] = [];
  let plannedMs = 0;
  while (plannedMs < durationMs * 2 + 10_000) {
    for (const kind of shuffle(rng, FAULT_KINDS)) {
      // Drawn for every kind, so that leaving kinds out does not change the others' steps.
      const base = {
        kind,
        gapMs: rng.between(500, 1500),
        pick: rng.nextU32(),
        mode: rng.chance(0.5) ? ('cut' as const) : ('hang' as const),
        amount: 0,
        jitter: 0,
      };
      let step: FaultStep;
      switch (kind) {
        case 'kill': {
          const target = rng.chance(0.5) ? 'leader' : 'follower';
          step = { ...base, variant: target, target, holdMs: rng.between(500, 2500) };
          break;
        }
        case 'pause':
          // Longer than an election timeout (randomised up to twice it): a new leader is
          // elected meanwhile. Half the pauses also cut the sleeping leader off (the draw
          // that picks cut or hang for partitions decides, so no draw is added): it wakes up
          // still believing it leads, with nobody to tell it otherwise, and must not serve.
          step = {
            ...base,
            variant: base.mode === 'hang' ? 'leader-isolated' : 'leader',
            target: 'leader',
            holdMs: rng.between(1200, 3000),
          };
          break;
        case 'partition': {
          const variant = partitions[partition++ % partitions.length] as PartitionVariant;
          step = {
            ...base,
            variant,
            target: variant === 'isolate-leader' ? 'leader' : 'any',
            holdMs: rng.between(1500, 4000),
          };
          break;
        }
        case 'delay': {
          const target = rng.pick(['leader', 'follower', 'any'] as const);
          step = {
            ...base,
            variant: target === 'any' ? 'all-links' : target,
            target,
            holdMs: rng.between(2000, 4000),
            amount: rng.between(20, 150),
            jitter: rng.between(0, 40),
          };
          break;
        }
        case 'disk': {
          const variant = disks[disk++ % disks.length] as DiskVariant;
          const long = variant === 'full-disk' || variant === 'slow-disk';
          step = {
            ...base,
            variant,
            target: variant === 'slow-disk' && rng.chance(0.5) ? 'leader' : 'any',
            holdMs: long ? rng.between(3000, 5000) : rng.between(300, 1500),
            amount: variant === 'slow-disk' ? rng.between(20, 150) : 0,
          };
          break;
        }
      }
      if (!kinds.includes(kind)) continue;
      steps.push(step);
      plannedMs += step.holdMs + step.gapMs + 1000;
    }
  }
  return steps;
}

/** One line of the fault log. */
export interface FaultLogEntry {
  /** Seconds since the run started. */
  readonly atS: number;
  readonly kind: FaultKind | 'heal' | 'note';
  readonly text: string;
}

/** Counts of the faults applied. */
export type FaultCounts = Record<FaultKind, number>;

/** Applies a fault schedule to a cluster. */
export class Nemesis {
  readonly counts: FaultCounts = { kill: 0, pause: 0, partition: 0, delay: 0, disk: 0 };
  readonly diskCounts: Record<DiskVariant, number> = {
    'torn-tail': 0,
    'flip-tail': 0,
    'flip-middle': 0,
    'full-disk': 0,
    'slow-disk': 0,
  };
  readonly log: FaultLogEntry[] = [];
  /** Failures of the cluster the nemesis saw itself (a node that would not restart, ...). */
  readonly findings: string[] = [];
  private stopRequested = false;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly t0Ms: number,
    private readonly print: (line: string) => void,
  ) {}

  /** Asks `run` to start no further fault (the current one is healed and finished). */
  stop(): void {
    this.stopRequested = true;
  }

  private note(kind: FaultLogEntry['kind'], text: string): void {
    const atS = (performance.now() - this.t0Ms) / 1000;
    this.log.push({ atS, kind, text });
    this.print(`[${atS.toFixed(1).padStart(6)}s] ${kind}: ${text}`);
  }

  /** Runs steps in order while each fits before `untilMs` (performance.now() time). */
  async run(steps: readonly FaultStep[], untilMs: number): Promise<void> {
    for (const step of steps) {
      if (this.stopRequested) return;
      // A step needs its hold time plus about two seconds to heal and restart.
      if (performance.now() + step.holdMs + 2000 > untilMs) return;
      await this.apply(step);
      if (this.stopRequested) return;
      await sleep(Math.min(step.gapMs, Math.max(0, untilMs - performance.now())));
    }
  }

  private running(): ChaosNode[] {
    return this.cluster.nodes.filter((n) => n.running && !n.paused);
  }

  /** The node a step aims at: the leader, a follower, or any running node. */
  private async target(
    target: FaultStep['target'],
    pick: number,
  ): Promise<{ node: ChaosNode; role: string }> {
    const leaderId = target === 'any' ? await this.cluster.leader() : await this.cluster.waitForLeader(2000);
    if (target === 'leader' && leaderId !== null)
      return { node: this.cluster.node(leaderId), role: 'leader' };
    const pool = this.running().filter((n) => target === 'any' || n.id !== leaderId);
    const candidates = pool.length > 0 ? pool : this.cluster.nodes;
    const node = candidates[pick % candidates.length] as ChaosNode;
    const role = node.id === leaderId ? 'leader' : leaderId === null ? 'no leader known' : 'follower';
    return { node, role };
  }

  /** Starts `node` (normally unless `options` say otherwise); a failure is a finding. */
  private async restart(node: ChaosNode, why: string, options: StartOptions = {}): Promise<boolean> {
    try {
      await node.start(options);
      return true;
    } catch (err) {
      this.findings.push(`${node.id} did not restart after ${why}: ${(err as Error).message}`);
      this.note('note', `${node.id} did not restart after ${why}: ${(err as Error).message}`);
      return false;
    }
  }

  private async apply(step: FaultStep): Promise<void> {
    switch (step.kind) {
      case 'kill':
        return this.kill(step);
      case 'pause':
        return this.pause(step);
      case 'partition':
        return this.partition(step);
      case 'delay':
        return this.delay(step);
      case 'disk':
        return this.disk(step);
    }
  }

  private async kill(step: FaultStep): Promise<void> {
    const { node, role } = await this.target(step.target, step.pick);
    this.counts.kill++;
    this.note('kill', `kill -9 ${node.id} (${role}) for ${step.holdMs} ms`);
    await node.kill();
    await sleep(step.holdMs);
    if (await this.restart(node, 'kill -9')) this.note('heal', `${node.id} restarted`);
  }

  private async pause(step: FaultStep): Promise<void> {
    const { node, role } = await this.target('leader', step.pick);
    if (!node.running) {
      await this.restart(node, 'an earlier fault');
    }
    this.counts.pause++;
    const isolated = step.variant === 'leader-isolated';
    this.note(
      'pause',
      `SIGSTOP ${node.id} (${role}) for ${step.holdMs} ms${isolated ? ', cut off while it sleeps' : ''}`,
    );
    node.pause();
    // Cut off only once stopped: it goes to sleep as a leader in good standing.
    if (isolated) this.cluster.mesh.isolate(node.id, 'hang');
    await sleep(step.holdMs);
    node.resume();
    if (isolated) {
      // Awake and alone for a while: reads it gets now must not be served from its old state.
      this.note('heal', `SIGCONT ${node.id}, still cut off`);
      await sleep(800);
      this.cluster.mesh.healAll();
      this.note('heal', 'links healed');
    } else this.note('heal', `SIGCONT ${node.id}`);
  }

  private async partition(step: FaultStep): Promise<void> {
    const mesh = this.cluster.mesh;
    const ids = this.cluster.ids;
    const rng = new Rng(step.pick);
    let what: string;
    switch (step.variant as PartitionVariant) {
      case 'isolate-node':
      case 'isolate-leader': {
        const { node, role } = await this.target(step.target, step.pick);
        mesh.isolate(node.id, step.mode);
        what = `${node.id} (${role}) cut off from every other node`;
        break;
      }
      case 'bridge': {
        // One node keeps its links to both sides; the sides cannot reach each other.
        const order = shuffle(rng, ids);
        const bridge = order[0] as string;
        const rest = order.slice(1);
        const left = rest.slice(0, Math.floor(rest.length / 2));
        const right = rest.slice(Math.floor(rest.length / 2));
        mesh.split(left, right, step.mode);
        what = `bridge ${bridge}: ${left.join(',')} | ${right.join(',')}`;
        break;
      }
      case 'split': {
        const order = shuffle(rng, ids);
        const minority = order.slice(0, Math.floor(ids.length / 2));
        const majority = order.slice(Math.floor(ids.length / 2));
        mesh.split(minority, majority, step.mode);
        what = `split ${minority.join(',')} | ${majority.join(',')}`;
        break;
      }
    }
    this.counts.partition++;
    this.note('partition', `${what} (${step.mode}) for ${step.holdMs} ms`);
    await sleep(step.holdMs);
    mesh.healAll();
    this.note('heal', 'links healed');
  }

  private async delay(step: FaultStep): Promise<void> {
    const mesh = this.cluster.mesh;
    let what: string;
    if (step.target === 'any') {
      for (const p of mesh.all()) p.delay(step.amount, step.jitter);
      what = 'every link';
    } else {
      const { node, role } = await this.target(step.target, step.pick);
      mesh.delayNode(node.id, step.amount, step.jitter);
      what = `every link of ${node.id} (${role})`;
    }
    this.counts.delay++;
    this.note('delay', `${what} +${step.amount}..${step.amount + step.jitter} ms for ${step.holdMs} ms`);
    await sleep(step.holdMs);
    mesh.healAll();
    this.note('heal', 'delays removed');
  }

  private async disk(step: FaultStep): Promise<void> {
    const variant = step.variant as DiskVariant;
    const { node, role } = await this.target(step.target, step.pick);
    this.counts.disk++;
    this.diskCounts[variant]++;
    const tag = `${Math.round(performance.now() - this.t0Ms)}`;
    const rng = new Rng(step.pick ^ 0x5eed);
    await node.kill();
    switch (variant) {
      case 'torn-tail':
      case 'flip-tail': {
        const report: DiskFaultReport | null =
          variant === 'torn-tail'
            ? plantTornTail(node.dataDir, 0.05 + rng.int(90) / 100, tag)
            : plantFlippedTail(node.dataDir, rng.int(100) / 100, rng.int(8), tag);
        this.note(
          'disk',
          `${variant} on ${node.id} (${role}): ${report ? `${report.detail} in ${report.file}` : 'no tail to damage: plain kill -9'}`,
        );
        await sleep(step.holdMs);
        if (await this.restart(node, `a ${variant} (recovery must cut it)`)) {
          // stderr and stdout are separate pipes: the recovery's line may come after "listening".
          for (let i = 0; i < 20 && node.tailCut === null; i++) await sleep(50);
          if (report === null) this.note('heal', `${node.id} restarted`);
          else if (node.tailCut !== null)
            this.note('heal', `${node.id} restarted; its recovery cut the tail`);
          else {
            this.findings.push(`${node.id} restarted after a ${variant} without reporting a cut tail`);
            this.note('heal', `${node.id} restarted WITHOUT reporting a cut tail`);
          }
        }
        return;
      }
      case 'flip-middle': {
        const report = flipMiddleByte(node.dataDir, rng.int(1_000_000) / 1_000_000, rng.int(8));
        if (report === null) {
          this.note('disk', `flip-middle on ${node.id}: no record followed by another: plain kill -9`);
          await this.restart(node, 'kill -9');
          return;
        }
        this.note('disk', `flip-middle on ${node.id} (${role}): ${report.detail} in ${report.file}`);
        await sleep(step.holdMs);
        await this.expectRefusal(node);
        report.restore?.();
        if (await this.restart(node, 'flip-middle, with the byte put back')) {
          this.note('heal', `${node.id} restarted with the byte put back`);
        }
        return;
      }
      case 'full-disk': {
        const limit = fileSizeLimitFor(node.dataDir, FULL_DISK_SEGMENT_BYTES, 16 * 1024);
        if (limit === null) {
          this.note('disk', `full-disk on ${node.id}: no segment to fill: plain kill -9`);
          await this.restart(node, 'kill -9');
          return;
        }
        this.note(
          'disk',
          `full-disk on ${node.id} (${role}): restarted under ulimit -f ${limit.limitKiB} KiB (its log ends at ${limit.writeEndBytes} bytes) for ${step.holdMs} ms`,
        );
        const started = await this.startExpectingFailure(node, {
          fileSizeLimitKiB: limit.limitKiB,
          segmentBytes: FULL_DISK_SEGMENT_BYTES,
          mayFailToStart: true,
          logLevel: 'info',
        });
        if (started) await this.watchFullDisk(node, step.holdMs);
        await node.kill();
        if (await this.restart(node, 'a full disk'))
          this.note('heal', `${node.id} restarted with room on its disk`);
        return;
      }
      case 'slow-disk': {
        this.note(
          'disk',
          `slow-disk on ${node.id} (${role}): restarted with ${step.amount} ms before every fdatasync for ${step.holdMs} ms`,
        );
        if (
          await this.restart(node, 'kill -9', { env: { RAFTLINE_FAULT_FSYNC_DELAY_MS: String(step.amount) } })
        ) {
          // A leader was asked for: the restarted node is a follower, so hand it leadership back.
          if (role === 'leader') await this.makeLeader(node);
          await sleep(step.holdMs);
          await node.kill();
        }
        if (await this.restart(node, 'a slow disk'))
          this.note('heal', `${node.id} restarted with a normal disk`);
        return;
      }
    }
  }

  /** Transfers leadership to `node` (best effort, up to 3 s). */
  private async makeLeader(node: ChaosNode): Promise<void> {
    const until = performance.now() + 3000;
    while (performance.now() < until) {
      const leader = await this.cluster.leader();
      if (leader === node.id) {
        this.note('note', `${node.id} leads again, on its slow disk`);
        return;
      }
      if (leader !== null)
        await this.cluster
          .node(leader)
          .transfer(node.id)
          .catch(() => {});
      await sleep(200);
    }
    this.note('note', `${node.id} did not take leadership back; it stays a follower on its slow disk`);
  }

  /** A node whose log is damaged in the middle must refuse to start (or stop at once) rather than serve. */
  private async expectRefusal(node: ChaosNode): Promise<void> {
    try {
      await node.start({ mayFailToStart: true }, 10_000);
    } catch (err) {
      const out = err instanceof StartError ? err.output : String(err);
      if (/corrupt/i.test(out))
        this.note('note', `${node.id} refused to start: ${lastLine(out, /corrupt/i)}`);
      else {
        this.findings.push(
          `${node.id} with a flipped byte in its log failed to start, but not as corrupt: ${out.slice(-300)}`,
        );
        this.note('note', `${node.id} failed to start, but not as corrupt: ${lastLine(out)}`);
      }
      return;
    }
    // It listens: it must at least have stopped serving on the damage.
    await sleep(500);
    const fatal = (await node.status())?.fatal;
    const stopped = fatal ? `${fatal.code}: ${fatal.message}` : node.stoppedServing;
    if (stopped !== null && /corrupt/i.test(stopped)) {
      this.note('note', `${node.id} started but stopped serving at once: ${stopped.slice(0, 200)}`);
    } else {
      this.findings.push(`${node.id} started and served on a log with a flipped byte in the middle`);
      this.note('note', `${node.id} STARTED on a log with a flipped byte in the middle`);
    }
    await node.kill();
  }

  /** Starts a node that may fail at start (a full disk can fail recovery's own writes). */
  private async startExpectingFailure(node: ChaosNode, options: StartOptions): Promise<boolean> {
    try {
      await node.start(options);
      return true;
    } catch (err) {
      const out = err instanceof StartError ? err.output : String(err);
      this.note('note', `${node.id} did not start on the full disk: ${lastLine(out)}`);
      return false;
    }
  }

  /**
   * Waits while a node runs on a full disk: it must stop serving (ERR_RAFT_STORAGE, logged
   * as "node stopped serving") and stay up, not crash.
   */
  private async watchFullDisk(node: ChaosNode, holdMs: number): Promise<void> {
    const until = performance.now() + holdMs;
    let reported = false;
    while (performance.now() < until) {
      if (!node.running) {
        const exit = this.cluster.exits.at(-1);
        this.findings.push(
          `${node.id} exited on a full disk instead of stopping cleanly (code ${exit?.code} signal ${exit?.signal})`,
        );
        this.note('note', `${node.id} EXITED on the full disk`);
        return;
      }
      // status().fatal says why a node stopped serving; its log says so too.
      const fatal = reported ? null : ((await node.status())?.fatal ?? null);
      const why = fatal !== null ? `${fatal.code}: ${fatal.message}` : node.stoppedServing;
      if (!reported && why !== null) {
        reported = true;
        const storage = /ERR_RAFT_STORAGE/.test(why);
        this.note(
          'note',
          `${node.id} stopped serving on the full disk${storage ? ' (ERR_RAFT_STORAGE)' : `: ${why.slice(0, 200)}`}`,
        );
      }
      await sleep(100);
    }
    if (!reported) {
      // Segments smaller than the limit never fail: a log replaced by a snapshot lives in new ones.
      const why = node.logReplaced
        ? ': a snapshot from the leader replaced its log (new, small segments)'
        : '';
      this.note('note', `${node.id} did not reach its file-size limit in ${holdMs} ms${why}`);
    }
  }

  /** Resumes, restarts and heals everything; returns what it did. */
  async healAll(): Promise<void> {
    this.cluster.mesh.healAll();
    for (const n of this.cluster.nodes) {
      if (n.paused) {
        n.resume();
        this.note('heal', `SIGCONT ${n.id}`);
      }
    }
    for (const n of this.cluster.nodes) {
      const o = n.startOptions;
      const faulty = o.env !== undefined || o.fileSizeLimitKiB !== undefined || o.segmentBytes !== undefined;
      if (n.running && faulty) await n.kill();
      if (!n.running && (await this.restart(n, 'the final heal'))) this.note('heal', `${n.id} restarted`);
    }
  }
}

/** `--segment-bytes` of a node restarted on a full disk: its spare segment must fit under the limit. */
export const FULL_DISK_SEGMENT_BYTES = 64 * 1024;

function lastLine(text: string, re?: RegExp): string {
  const lines = text.split('\n').filter((l) => l.trim().length > 0);
  const found = re ? lines.filter((l) => re.test(l)).at(-1) : undefined;
  return (found ?? lines.at(-1) ?? '').slice(0, 300);
}
