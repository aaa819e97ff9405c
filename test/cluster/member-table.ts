/**
 * The members of a test cluster of node processes, by id: what the cluster harnesses
 * (`process-cluster.ts`, `test/fuzz/cluster.ts`) look members up by.
 */

export class MemberTable<M extends { readonly id: string; readonly port: number }> extends Map<string, M> {
  ids(): string[] {
    return [...this.keys()];
  }

  /** The member `id`; throws when there is none. */
  member(id: string): M {
    const m = this.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  /** `127.0.0.1:<port>` of member `id`. */
  address(id: string): string {
    return `127.0.0.1:${this.member(id).port}`;
  }

  /** Every member as `id=127.0.0.1:port`, the form of the `peers` option. */
  peerSpecs(): string[] {
    return [...this.values()].map((m) => `${m.id}=127.0.0.1:${m.port}`);
  }
}
