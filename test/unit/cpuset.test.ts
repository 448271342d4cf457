import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { isEs2Error } from '../../src/errors/index.js';
import { MAX_CPU, formatCpuset, parseCpuset, sameCpus } from '../../src/policy/cpuset.js';

describe('parseCpuset', () => {
  const valid: [string, number[]][] = [
    ['0', [0]],
    ['3-5', [3, 4, 5]],
    ['1-4,^2', [1, 3, 4]],
    ['8,0-1,^0,8', [1, 8]],
    ['0-3,^1,^2,7', [0, 3, 7]],
    ['^9,9-10', [10]],
    [`${MAX_CPU}`, [MAX_CPU]],
  ];
  for (const [text, cpus] of valid) {
    it(`reads "${text}" as ${JSON.stringify(cpus)}`, () => {
      assert.deepEqual(parseCpuset(text), cpus);
    });
  }

  const invalid: [string, RegExp][] = [
    ['', /it is empty/],
    ['4-1', /range "4-1" is reversed/],
    ['^2', /only excludes/],
    ['^1,^2', /only excludes/],
    ['1,,2', /empty part/],
    ['1,', /empty part/],
    ['1-2,^1,^2', /selects no CPU/],
    ['a', /"a" is not a CPU number/],
    ['1 ,2', /"1 " is not a CPU number/],
    ['01', /"01" is not a CPU number/],
    ['1-', /"1-" is not a CPU number/],
    ['-1', /"-1" is not a CPU number/],
    ['1-2-3', /"1-2-3" is not a CPU number/],
    ['^', /"\^" is not a CPU number/],
    [`${MAX_CPU + 1}`, /CPU 4096 in "4096" is above 4095/],
    ['0-99999', /above 4095/],
  ];
  for (const [text, why] of invalid) {
    it(`refuses "${text}" naming the bad part`, () => {
      assert.throws(() => parseCpuset(text, '/vcpus/0/cpuset'), (err: unknown) => {
        assert.ok(isEs2Error(err, 'VALIDATION_FAILED'));
        assert.match(err.message, why);
        assert.equal(err.details[0]?.path, '/vcpus/0/cpuset');
        return true;
      });
    });
  }
});

describe('formatCpuset', () => {
  const cases: [number[], string][] = [
    [[0], '0'],
    [[0, 1], '0-1'],
    [[5, 0, 1, 2, 3, 7, 8], '0-3,5,7-8'],
    [[4, 4, 2], '2,4'],
  ];
  for (const [cpus, text] of cases) {
    it(`writes ${JSON.stringify(cpus)} as "${text}"`, () => {
      assert.equal(formatCpuset(cpus), text);
    });
  }

  it('refuses an empty set, which has no cpuset form', () => {
    assert.throws(() => formatCpuset([]), RangeError);
  });

  it('round-trips every non-empty set through parseCpuset', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 0, max: MAX_CPU }), { minLength: 1, maxLength: 64 }), (cpus) => {
      const sorted = [...cpus].sort((a, b) => a - b);
      assert.ok(sameCpus(parseCpuset(formatCpuset(cpus)), sorted));
    }));
  });
});
