// Signs and checks the audit log's checkpoints with Ed25519 (node:crypto): the C2SP
// tlog-checkpoint body `origin\ntreeSize\nrootHash\n`, and the same as a C2SP signed note, the
// form transparency-log tooling reads. The key lives outside the database (AUDIT_SIGNING_KEY), so
// whoever holds the database cannot sign a rewritten tree.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { Hash } from './merkle.js';

/** The fixed ASN.1 prefix that makes a 32-byte Ed25519 seed a PKCS #8 private key (RFC 8410). */
const pkcs8Ed25519Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
/** The signature type byte of Ed25519 in C2SP signed notes. */
const noteEd25519Type = 0x01;

export interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

export class CheckpointSigner {
  readonly publicJwk: PublicJwk;
  /** RFC 7638 thumbprint of the public key: names it in checkpoints and the JWK. */
  readonly keyId: string;
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  /** The C2SP note key hash: the first 4 bytes of SHA-256(name || 0x0A || type || key). */
  private readonly noteKeyHash: Buffer;

  constructor(
    seed: Buffer,
    readonly origin: string,
  ) {
    this.privateKey = createPrivateKey({ key: Buffer.concat([pkcs8Ed25519Prefix, seed]), format: 'der', type: 'pkcs8' });
    this.publicKey = createPublicKey(this.privateKey);
    const { x } = this.publicKey.export({ format: 'jwk' }) as { x: string };
    this.keyId = createHash('sha256').update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x })).digest('base64url');
    this.publicJwk = { kty: 'OKP', crv: 'Ed25519', x, kid: this.keyId, alg: 'EdDSA', use: 'sig' };
    this.noteKeyHash = createHash('sha256')
      .update(Buffer.concat([Buffer.from(`${origin}\n`), Buffer.from([noteEd25519Type]), Buffer.from(x, 'base64url')]))
      .digest()
      .subarray(0, 4);
  }

  sign(treeSize: number, rootHash: Hash): Buffer {
    return sign(null, Buffer.from(checkpointBody(this.origin, treeSize, rootHash)), this.privateKey);
  }

  verify(checkpoint: { origin: string; treeSize: number; rootHash: Hash; signature: Buffer }): boolean {
    return verify(null, Buffer.from(checkpointBody(checkpoint.origin, checkpoint.treeSize, checkpoint.rootHash)), this.publicKey, checkpoint.signature);
  }

  /** The checkpoint as a C2SP signed note: its body, a blank line, and the signature line. */
  note(treeSize: number, rootHash: Hash, signature: Buffer): string {
    return `${checkpointBody(this.origin, treeSize, rootHash)}\n\u2014 ${this.origin} ${Buffer.concat([this.noteKeyHash, signature]).toString('base64')}\n`;
  }
}

export const checkpointBody = (origin: string, treeSize: number, rootHash: Hash) => `${origin}\n${treeSize}\n${rootHash.toString('base64')}\n`;
