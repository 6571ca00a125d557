/* Unit tests for the bounds-checked cursor and writer (src/core/wire.h). */
#include <criterion/criterion.h>

#include "core/wire.h"

Test(wire, reads_big_endian_fields)
{
	const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a};
	struct wire w = wire_init(b, sizeof(b));

	cr_assert_eq(wire_u8(&w), 0x01);
	cr_assert_eq(wire_u16(&w), 0x0203);
	cr_assert_eq(wire_u24(&w), 0x040506);
	cr_assert_eq(wire_u32(&w), 0x0708090a);
	cr_assert(wire_done(&w));
	cr_assert_eq(wire_end(&w), 0);
}

Test(wire, error_is_sticky_and_reads_return_zero)
{
	const uint8_t b[] = {0xff, 0xff, 0xff};
	struct wire w = wire_init(b, sizeof(b));

	cr_assert_eq(wire_u16(&w), 0xffff);
	cr_assert_eq(wire_u16(&w), 0, "short read must yield 0");
	cr_assert_eq(w.err, -EBADMSG);
	cr_assert_eq(w.off, 2, "a failed read must not move the cursor");
	/* One byte is still there, but the cursor has failed: nothing more is read. */
	cr_assert_eq(wire_u8(&w), 0);
	cr_assert_eq(wire_left(&w), 0);
	cr_assert_eq(wire_end(&w), -EBADMSG);
}

Test(wire, leftover_bytes_fail_wire_end)
{
	const uint8_t b[] = {1, 2, 3};
	struct wire w = wire_init(b, sizeof(b));

	wire_u16(&w);
	cr_assert_eq(w.err, 0);
	cr_assert_not(wire_done(&w));
	cr_assert_eq(wire_end(&w), -EBADMSG);
}

Test(wire, sub_cursor_is_bounded_and_parent_skips_it)
{
	const uint8_t b[] = {0x00, 0x02, 0xaa, 0xbb, 0xcc};
	struct wire w = wire_init(b, sizeof(b));
	uint16_t n = wire_u16(&w);
	struct wire c = wire_sub(&w, n);

	cr_assert_eq(wire_u16(&c), 0xaabb);
	cr_assert_eq(wire_u8(&c), 0, "the child must not read past its field");
	cr_assert_eq(c.err, -EBADMSG);
	cr_assert_eq(w.err, 0, "a child's error does not fail the parent");
	cr_assert_eq(wire_u8(&w), 0xcc);
	cr_assert(wire_done(&w));
}

Test(wire, sub_longer_than_parent_fails_both)
{
	const uint8_t b[] = {0x00, 0x09, 0xaa};
	struct wire w = wire_init(b, sizeof(b));
	struct wire c = wire_sub(&w, wire_u16(&w));

	cr_assert_eq(c.err, -EBADMSG);
	cr_assert_eq(w.err, -EBADMSG);
	cr_assert_eq(wire_u8(&c), 0);
}

Test(wire, bytes_ptr_skip)
{
	const uint8_t b[] = {1, 2, 3, 4, 5};
	struct wire w = wire_init(b, sizeof(b));
	uint8_t out[2];

	wire_bytes(&w, out, 2);
	cr_assert_eq(out[0], 1);
	cr_assert_eq(out[1], 2);
	const uint8_t *p = wire_ptr(&w, 2);
	cr_assert_eq(p, b + 2);
	wire_skip(&w, 1);
	cr_assert(wire_done(&w));
	cr_assert_null(wire_ptr(&w, 1));
	wire_bytes(&w, out, 2);
	cr_assert_eq(out[0], 0, "failed copy zeroes the destination");
	cr_assert_eq(out[1], 0);
}

Test(wire, huge_length_does_not_overflow)
{
	const uint8_t b[] = {1, 2};
	struct wire w = wire_init(b, sizeof(b));

	wire_u8(&w);
	wire_skip(&w, SIZE_MAX);
	cr_assert_eq(w.err, -EBADMSG);
	cr_assert_eq(w.off, 1);
}

Test(wbuf, writes_and_reports_length)
{
	uint8_t buf[8];
	struct wbuf b = wbuf_init(buf, sizeof(buf));

	wbuf_u8(&b, 0x11);
	wbuf_u16(&b, 0x2233);
	wbuf_u32(&b, 0x44556677);
	cr_assert_eq(wbuf_result(&b), 7);
	const uint8_t want[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
	cr_assert_arr_eq(buf, want, sizeof(want));
}

Test(wbuf, overflow_is_sticky_and_writes_nothing)
{
	uint8_t buf[4] = {0};
	struct wbuf b = wbuf_init(buf, 3);

	wbuf_u16(&b, 0xaaaa);
	wbuf_u16(&b, 0xbbbb);
	cr_assert_eq(wbuf_result(&b), -EMSGSIZE);
	cr_assert_eq(buf[2], 0, "a write that does not fit must not be partial");
	wbuf_u8(&b, 0xcc);
	cr_assert_eq(b.off, 2, "nothing is written after an error");
	cr_assert_eq(buf[3], 0);
}

Test(wbuf, reserve_and_patch_length)
{
	uint8_t buf[16];
	struct wbuf b = wbuf_init(buf, sizeof(buf));
	size_t at = wbuf_reserve(&b, 2);

	wbuf_bytes(&b, "abc", 3);
	wbuf_put_u16_at(&b, at, (uint16_t)(b.off - at - 2));
	cr_assert_eq(buf[0], 0);
	cr_assert_eq(buf[1], 3);
	cr_assert_eq(wbuf_result(&b), 5);

	struct wbuf small = wbuf_init(buf, 1);
	cr_assert_eq(wbuf_reserve(&small, 2), SIZE_MAX);
	wbuf_put_u16_at(&small, SIZE_MAX, 7); /* must be a harmless no-op */
	cr_assert_eq(wbuf_result(&small), -EMSGSIZE);
}
