// A durable adapter for the peer, in the shape of node-oidc-provider's documented Redis adapter example
// (example/adapters/redis.js in its repository, written against ioredis): one Redis key per model
// instance with the model's TTL; the one-time artefacts (codes, refresh tokens) as a hash, so that
// `consume` marks a field instead of rewriting the payload; a list per grant of the keys it issued,
// for `revokeByGrantId`; and an index from an interaction's `uid` to its session.
// Every key carries `prefix`, so that a run can remove exactly what it wrote (`clear`).
import Redis from 'ioredis';

const consumable = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

export function redisAdapter(url, prefix) {
  const redis = new Redis(url, { keyPrefix: prefix, lazyConnect: false });
  const grantKey = (grantId) => `grant:${grantId}`;
  const uidKey = (uid) => `uid:${uid}`;
  const userCodeKey = (code) => `userCode:${code}`;

  class RedisAdapter {
    constructor(name) {
      this.name = name;
      this.hashed = consumable.has(name);
    }

    key(id) {
      return `${this.name}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const tx = redis.multi();
      if (this.hashed) {
        tx.hset(key, { payload: JSON.stringify(payload) });
      } else {
        tx.set(key, JSON.stringify(payload));
      }
      if (expiresIn) tx.expire(key, expiresIn);
      if (payload.grantId) {
        const list = grantKey(payload.grantId);
        tx.rpush(list, key);
        // The list lives as long as the longest-lived key on it.
        const ttl = await redis.ttl(list);
        if (expiresIn > ttl) tx.expire(list, expiresIn);
      }
      for (const [field, index] of [['userCode', userCodeKey], ['uid', uidKey]]) {
        if (payload[field]) {
          tx.set(index(payload[field]), id);
          if (expiresIn) tx.expire(index(payload[field]), expiresIn);
        }
      }
      await tx.exec();
    }

    async find(id) {
      if (!id) return undefined;
      if (this.hashed) {
        const fields = await redis.hgetall(this.key(id));
        if (!fields || !fields.payload) return undefined;
        const { payload, ...rest } = fields;
        return { ...rest, ...JSON.parse(payload) };
      }
      const text = await redis.get(this.key(id));
      return text ? JSON.parse(text) : undefined;
    }

    async findByUid(uid) {
      return this.find(await redis.get(uidKey(uid)));
    }

    async findByUserCode(userCode) {
      return this.find(await redis.get(userCodeKey(userCode)));
    }

    async destroy(id) {
      await redis.del(this.key(id));
    }

    async consume(id) {
      await redis.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
    }

    // eslint-disable-next-line class-methods-use-this
    async revokeByGrantId(grantId) {
      // The list holds key names as `upsert` wrote them (ioredis adds the prefix to keys, not values).
      const keys = await redis.lrange(grantKey(grantId), 0, -1);
      const tx = redis.multi();
      for (const key of keys) tx.del(key);
      tx.del(grantKey(grantId));
      await tx.exec();
    }
  }

  // The person → grant memory of provider.mjs (see there), in Redis too.
  const consents = {
    get: (key) => redis.get(`consent:${key}`),
    set: (key, grantId) => redis.set(`consent:${key}`, grantId, 'EX', 14 * 24 * 3600),
  };

  // Deletes every key of this run.
  async function clear() {
    let cursor = '0';
    do {
      // SCAN's MATCH sees full key names: the prefix is not added to it.
      // eslint-disable-next-line no-await-in-loop
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      // eslint-disable-next-line no-await-in-loop
      if (keys.length) await redis.del(...keys.map((k) => k.slice(prefix.length)));
    } while (cursor !== '0');
    await redis.quit();
  }

  return { RedisAdapter, consents, clear };
}
