/**
 * Addresses as they are written in configuration and on the command line: `host:port` for
 * a listen address and `id=host:port` for a peer (DESIGN.md, "Public shape":
 * `listen: '127.0.0.1:7001'`, `peers: ['n1=127.0.0.1:7001', ...]`).
 *
 * Every parse error names the string it was given, because the string usually comes from
 * a flag or a config file with several addresses in it, and "invalid port" alone does not
 * say which one to fix.
 */
import { MAX_ID_BYTES } from './protocol.js';

/** A TCP endpoint. `host` is a name or an IP literal, IPv6 without brackets. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** One member of the cluster: its node id and where it listens. */
export interface PeerSpec extends HostPort {
  readonly id: string;
}

/** Thrown for an address or peer spec that cannot be parsed; the message quotes the input. */
export class AddressError extends Error {
  override readonly name = 'AddressError';
  /** The string that was refused, as given. */
  readonly input: string;

  constructor(input: string, reason: string) {
    super(`invalid address ${JSON.stringify(input)}: ${reason}`);
    this.input = input;
  }
}

const utf8 = new TextEncoder();
const NAME_OR_IPV4_HOST = /^[A-Za-z0-9._-]+$/;
const IPV6_HOST = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$/;

/**
 * Parses `host:port`: `127.0.0.1:7001`, `node-1.example:7001`, or `[::1]:7001` (an IPv6
 * literal must be bracketed, since its colons would otherwise be ambiguous with the port's).
 * The port is decimal 0..65535; 0 is accepted because a listen address may ask the OS
 * for a free port. Throws `AddressError` naming the input.
 */
export function parseHostPort(input: string): HostPort {
  return parseHostPortOf(input, input);
}

/**
 * Parses `id=host:port`, e.g. `n1=127.0.0.1:7001`. The id is non-empty, at most
 * `MAX_ID_BYTES` UTF-8 bytes (it travels in the handshake with a one-byte length) and
 * has no surrounding whitespace (a stray space would silently make a different node id).
 * Port 0 is refused: a peer cannot be reached at port 0. Throws `AddressError` naming
 * the input.
 */
export function parsePeerSpec(input: string): PeerSpec {
  const eq = input.indexOf('=');
  if (eq < 0) throw new AddressError(input, 'expected id=host:port');
  const id = input.slice(0, eq);
  if (id.length === 0) throw new AddressError(input, 'the node id is empty');
  if (id.trim() !== id) throw new AddressError(input, 'the node id has leading or trailing whitespace');
  if (utf8.encode(id).byteLength > MAX_ID_BYTES) {
    throw new AddressError(input, `the node id is longer than ${MAX_ID_BYTES} UTF-8 bytes`);
  }
  const { host, port } = parseHostPortOf(input.slice(eq + 1), input);
  if (port === 0) throw new AddressError(input, 'a peer cannot listen on port 0');
  return { id, host, port };
}

/** Formats an endpoint back to `host:port`, bracketing an IPv6 literal so that it parses again. */
export function formatHostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Parses `text` as host:port; errors quote `whole`, the string the user actually wrote. */
function parseHostPortOf(text: string, whole: string): HostPort {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new AddressError(whole, "an IPv6 host opened with '[' is not closed by ']'");
    host = text.slice(1, close);
    if (text[close + 1] !== ':') throw new AddressError(whole, "expected ':port' after ']'");
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new AddressError(whole, 'expected host:port');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':'))
      throw new AddressError(whole, 'an IPv6 host must be written in brackets: [::1]:7001');
  }
  if (host.length === 0) throw new AddressError(whole, 'the host is empty');
  // Only what a DNS name or an IP literal may contain (an IPv6 one with an optional zone,
  // `fe80::1%eth0`): a stray '=', space or '/' is a typo, better refused here than as a
  // confusing lookup failure on every reconnect.
  const hostPattern = text.startsWith('[') ? IPV6_HOST : NAME_OR_IPV4_HOST;
  if (!hostPattern.test(host))
    throw new AddressError(whole, `the host ${JSON.stringify(host)} has invalid characters`);
  // Digits only: Number() would accept '', ' 7', '0x1f' and '1e3'.
  if (!/^[0-9]{1,5}$/.test(portText))
    throw new AddressError(whole, `the port ${JSON.stringify(portText)} is not a number`);
  const port = Number(portText);
  if (port > 65535) throw new AddressError(whole, `the port ${port} is above 65535`);
  return { host, port };
}
