// Who is signed in, and the session's one multiplexed socket.

import { Mux } from './socket';
import type { Me, Permission } from './types';

let me: Me | null = null;
let mux: Mux | null = null;

export function setSession(m: Me, token: string): void {
  me = m;
  mux?.close();
  mux = new Mux(token);
}

export function endSession(): void {
  mux?.close();
  mux = null;
  me = null;
}

export function currentMe(): Me {
  if (!me) throw new Error('not signed in');
  return me;
}

export function socket(): Mux {
  if (!mux) throw new Error('not signed in');
  return mux;
}

export function can(p: Permission): boolean {
  return !!me && (me.super_user || me.permissions.includes(p));
}

/** `own` for the caller's jobs, `any` for everyone's. */
export function canOnJob(owner: string, own: Permission, any: Permission): boolean {
  if (!me) return false;
  return can(any) || (can(own) && owner === me.user);
}
