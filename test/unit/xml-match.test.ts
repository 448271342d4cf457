import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { assertXmlEqual, xmlDifference } from '../helpers/xml-match.js';

describe('the semantic XML matcher', () => {
  it('ignores whitespace between elements, attribute order and quoting, and namespace prefixes', () => {
    const a = `<domain type='kvm' id='1'><a:x xmlns:a="urn:n" k='v'> text </a:x><!-- c --></domain>`;
    const b = `<domain id="1" type="kvm">\n  <b:x k="v" xmlns:b="urn:n">text</b:x>\n  <!--c-->\n</domain>`;
    assert.equal(xmlDifference(a, b), null);
  });

  const differences: { name: string; actual: string; expected: string; report: RegExp }[] = [
    { name: 'an attribute value', actual: '<d><e a="1"/><e a="2"/></d>', expected: '<d><e a="1"/><e a="3"/></d>', report: /^\/d\/e\[2\]\/@a: "2", expected "3"$/ },
    { name: 'a missing attribute', actual: '<d><e/></d>', expected: '<d><e a="1"/></d>', report: /^\/d\/e\[1\]\/@a: absent, expected "1"$/ },
    { name: 'an extra element', actual: '<d><e/><f/></d>', expected: '<d><e/></d>', report: /^\/d: child 2 is <f>, expected nothing$/ },
    { name: 'element order', actual: '<d><f/><e/></d>', expected: '<d><e/><f/></d>', report: /^\/d\/e\[1\]: element f, expected e$/ },
    { name: 'text', actual: '<d><n>a</n></d>', expected: '<d><n>b</n></d>', report: /^\/d\/n\[1\]\/text\(\)\[1\]: "a", expected "b"$/ },
    { name: 'a namespace', actual: '<d><x:e xmlns:x="urn:a"/></d>', expected: '<d><x:e xmlns:x="urn:b"/></d>', report: /element \{urn:a\}e, expected \{urn:b\}e/ },
    { name: 'a comment', actual: '<d><!-- a --></d>', expected: '<d><!-- b --></d>', report: /comment\(\)\[1\]: "a", expected "b"/ },
  ];
  for (const d of differences) {
    it(`reports the first difference in ${d.name} with its location`, () => {
      assert.match(xmlDifference(d.actual, d.expected) ?? '', d.report);
    });
  }

  it('fails an assertion with the difference in the message', () => {
    assert.throws(() => assertXmlEqual('<d a="1"/>', '<d a="2"/>'), /XML differs: \/d\/@a: "1", expected "2"/);
  });
});
