/**
 * The stop-string matcher on its own: matches split across pushes, several stops (the earliest wins), the
 * held-back tail released once it can no longer match, include_stop_str_in_output, and min_tokens.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StopStringMatcher } from '../../src/server/stop-strings.ts';

/** Pushes each piece; returns what came out per push, and the stop. */
function run(matcher: StopStringMatcher, pieces: string[]) {
  const out: string[] = [];
  let stop: string | null = null;
  for (const piece of pieces) {
    const r = matcher.push(piece);
    out.push(r.text);
    if (r.stop !== null) {
      stop = r.stop;
      break;
    }
  }
  return { out, stop, text: out.join('') };
}

describe('StopStringMatcher', () => {
  test('a stop string split over several pushes is found; text stops before it', () => {
    const r = run(new StopStringMatcher(['END']), ['Hello E', 'N', 'D and more']);
    assert.equal(r.stop, 'END');
    assert.equal(r.text, 'Hello ');
    assert.deepEqual(r.out, ['Hello ', '', '']);
  });

  test('holds back only a tail that could still start a stop string, and releases it when it cannot', () => {
    const m = new StopStringMatcher(['<|end|>']);
    assert.deepEqual(m.push('abc<|'), { text: 'abc', stop: null });
    assert.deepEqual(m.push('en'), { text: '', stop: null });
    assert.deepEqual(m.push('X'), { text: '<|enX', stop: null }, 'no longer a prefix: released');
    assert.deepEqual(m.push('no stop here'), { text: 'no stop here', stop: null });
    assert.deepEqual(m.push(' <'), { text: ' ', stop: null });
    assert.equal(m.flush(), '<', 'the end of generation releases the rest');
  });

  test('a held tail can restart inside itself ("aab" after "aa" + "a")', () => {
    const m = new StopStringMatcher(['aab']);
    assert.deepEqual(m.push('aa'), { text: '', stop: null });
    assert.deepEqual(m.push('a'), { text: 'a', stop: null });
    assert.deepEqual(m.push('b!'), { text: '', stop: 'aab' });
  });

  test('several stops: the earliest in the text wins, whatever the list order', () => {
    const r = run(new StopStringMatcher(['world', 'lo w', 'o']), ['hello world']);
    assert.equal(r.stop, 'lo w');
    assert.equal(r.text, 'hel');
    const split = run(new StopStringMatcher(['world', 'o']), ['hel', 'lo wor', 'ld']);
    assert.equal(split.stop, 'o');
    assert.equal(split.text, 'hell');
    const tie = run(new StopStringMatcher(['ab', 'abc']), ['xabc']);
    assert.equal(tie.stop, 'ab', 'list order breaks a tie at one position');
    assert.equal(tie.text, 'x');
  });

  test('include_stop_str_in_output keeps the stop string and holds nothing back', () => {
    const m = new StopStringMatcher(['END'], true);
    assert.deepEqual(m.push('Hello E'), { text: 'Hello E', stop: null });
    assert.deepEqual(m.push('N'), { text: 'N', stop: null });
    assert.deepEqual(m.push('D and more'), { text: 'D', stop: 'END' });
    const whole = run(new StopStringMatcher(['\n\n'], true), ['a\n\nb']);
    assert.equal(whole.text, 'a\n\n');
  });

  test('text from before min_tokens cannot end a match, but a match may start in it', () => {
    const m = new StopStringMatcher(['ab']);
    assert.deepEqual(m.push('xab', false), { text: 'xab', stop: null });
    assert.deepEqual(m.push('a', false), { text: '', stop: null });
    assert.deepEqual(m.push('b'), { text: '', stop: 'ab' });
  });

  test('after a match nothing more comes out; a long run of text keeps the state small', () => {
    const m = new StopStringMatcher(['STOP']);
    for (let i = 0; i < 1000; i++) assert.equal(m.push('word ').text, 'word ');
    assert.deepEqual(m.push('ST'), { text: '', stop: null });
    assert.deepEqual(m.push('OP'), { text: '', stop: 'STOP' });
    assert.deepEqual(m.push('more'), { text: '', stop: null });
    assert.equal(m.flush(), '');
    assert.ok((m as unknown as { tail: string }).tail.length < 16, 'only a short tail is kept');
  });

  test('an empty stop string is refused', () => {
    assert.throws(() => new StopStringMatcher(['']), /empty/);
  });
});
