/* test-control.c: admin control as a value (core/control.c): the mode
 * override, limits and pins change the policy the planner sees, leases
 * end by cookie, by holder and with their VM, and after a plan the
 * reservations that are done or out of time are reported once.  The
 * clock is passed in: deadlines are plain numbers here. */
#include "control.h"
#include "sample.h"

#define MiB (1024ULL * 1024)
#define GiB (1024 * MiB)
#define SEC G_USEC_PER_SEC

static MtVmPolicy
files_vm_policy (void)
{
  MtVmPolicy p;

  mt_vm_policy_init_defaults (&p);
  p.min = (MtSize){ .is_percent = TRUE, .percent = 25 };
  p.max = (MtSize){ .is_percent = TRUE, .percent = 100 };
  return p;
}

static void
assert_bounds (const MtVmPolicy *p, guint64 min, guint64 max)
{
  g_assert_false (p->min.is_percent);
  g_assert_false (p->max.is_percent);
  g_assert_cmpuint (p->min.bytes, ==, min);
  g_assert_cmpuint (p->max.bytes, ==, max);
}

static void
assert_files_bounds (const MtVmPolicy *p)
{
  g_assert_true (p->min.is_percent);
  g_assert_cmpfloat (p->min.percent, ==, 25);
  g_assert_true (p->max.is_percent);
  g_assert_cmpfloat (p->max.percent, ==, 100);
}

static void
test_mode (void)
{
  g_autoptr (MtControl) c = mt_control_new ();
  MtHostPolicy files, hp;
  MtMode m;

  mt_host_policy_init_defaults (&files);
  g_assert_cmpint (mt_control_get_mode (c, FALSE), ==, MT_MODE_ACTIVE);
  g_assert_cmpint (mt_control_get_mode (c, TRUE), ==, MT_MODE_DRY_RUN);
  /* Setting the mode the files already give changes nothing anyone sees. */
  g_assert_cmpint (mt_control_set_mode (c, MT_MODE_ACTIVE, FALSE), ==, MT_CONTROL_SAME);
  g_assert_cmpint (mt_control_set_mode (c, MT_MODE_DRY_RUN, FALSE), ==, MT_CONTROL_CHANGED);
  mt_control_host_policy (c, &files, &hp);
  g_assert_true (hp.dry_run);
  g_assert_cmpint (mt_control_set_mode (c, MT_MODE_DRY_RUN, FALSE), ==, MT_CONTROL_SAME);
  g_assert_cmpint (mt_control_set_mode (c, MT_MODE_PAUSED, FALSE), ==, MT_CONTROL_CHANGED);
  /* The override outlasts what the files say (a reload). */
  g_assert_cmpint (mt_control_get_mode (c, TRUE), ==, MT_MODE_PAUSED);
  g_assert_cmpint (mt_control_set_mode (c, MT_MODE_ACTIVE, TRUE), ==, MT_CONTROL_CHANGED);
  files.dry_run = TRUE;
  mt_control_host_policy (c, &files, &hp);
  g_assert_false (hp.dry_run);

  g_assert_true (mt_mode_from_string ("dry-run", &m));
  g_assert_cmpint (m, ==, MT_MODE_DRY_RUN);
  g_assert_cmpstr (mt_mode_to_string (MT_MODE_PAUSED), ==, "paused");
  g_assert_false (mt_mode_from_string ("fast", &m));
  g_assert_false (mt_mode_from_string (NULL, &m));
}

static void
test_limits (void)
{
  g_autoptr (MtControl) c = mt_control_new ();
  MtVmPolicy files = files_vm_policy ();
  MtVmPolicy p;
  guint64 min = 0, max = 0;

  mt_control_vm_policy (c, "a", &files, &p);
  assert_files_bounds (&p);
  g_assert_false (mt_control_get_limits (c, "a", &min, &max));
  g_assert_cmpint (mt_control_set_limits (c, "a", 0, 0), ==, MT_CONTROL_SAME);

  g_assert_cmpint (mt_control_set_limits (c, "a", GiB, 2 * GiB), ==, MT_CONTROL_CHANGED);
  g_assert_cmpint (mt_control_set_limits (c, "a", GiB, 2 * GiB), ==, MT_CONTROL_SAME);
  g_assert_true (mt_control_get_limits (c, "a", &min, &max));
  g_assert_cmpuint (min, ==, GiB);
  g_assert_cmpuint (max, ==, 2 * GiB);
  mt_control_vm_policy (c, "a", &files, &p);
  assert_bounds (&p, GiB, 2 * GiB);
  g_assert_cmpuint (p.shares, ==, files.shares);
  mt_control_vm_policy (c, "b", &files, &p);
  assert_files_bounds (&p);

  g_assert_cmpint (mt_control_set_limits (c, "a", 0, 0), ==, MT_CONTROL_CHANGED);
  g_assert_false (mt_control_get_limits (c, "a", &min, &max));
  mt_control_vm_policy (c, "a", &files, &p);
  assert_files_bounds (&p);
}

static void
test_pins (void)
{
  g_autoptr (MtControl) c = mt_control_new ();
  MtVmPolicy files = files_vm_policy ();
  MtVmPolicy p;
  g_autoptr (MtLease) ended = NULL;
  g_autoptr (GPtrArray) pins = NULL;
  guint p1, p2, p3;

  mt_control_set_limits (c, "a", GiB, 2 * GiB);
  g_assert_cmpint (mt_control_pin (c, "a", 768 * MiB, "first", ":1.1", &p1), ==, MT_CONTROL_PLAN);
  g_assert_cmpint (mt_control_pin (c, "a", 1536 * MiB, "", ":1.2", &p2), ==, MT_CONTROL_PLAN);
  g_assert_cmpint (mt_control_pin (c, "b", 512 * MiB, "other", ":1.1", &p3), ==, MT_CONTROL_PLAN);
  g_assert_cmpuint (p1, >, 0);
  g_assert_cmpuint (p2, >, p1);
  g_assert_cmpuint (p3, >, p2);

  /* The newest pin is in force, above the limits. */
  mt_control_vm_policy (c, "a", &files, &p);
  assert_bounds (&p, 1536 * MiB, 1536 * MiB);
  g_assert_true (mt_control_vm_pin (c, "a")->cookie == p2);
  g_assert_cmpstr (mt_control_lookup_lease (c, p2)->reason, ==, "no reason given");
  g_assert_cmpstr (mt_control_lookup_lease (c, p2)->holder, ==, ":1.2");

  pins = mt_control_list_leases (c, MT_LEASE_PIN, "a");
  g_assert_cmpuint (pins->len, ==, 2);
  g_assert_cmpuint (((MtLease *) pins->pdata[0])->cookie, ==, p1);
  g_assert_cmpuint (((MtLease *) pins->pdata[1])->cookie, ==, p2);
  g_assert_cmpuint (((MtLease *) pins->pdata[0])->bytes, ==, 768 * MiB);
  g_clear_pointer (&pins, g_ptr_array_unref);
  pins = mt_control_list_leases (c, MT_LEASE_PIN, NULL);
  g_assert_cmpuint (pins->len, ==, 3);
  g_clear_pointer (&pins, g_ptr_array_unref);
  pins = mt_control_list_leases (c, MT_LEASE_RESERVATION, NULL);
  g_assert_cmpuint (pins->len, ==, 0);

  /* Ending the newest puts the one before it in force; then the limits. */
  g_assert_cmpint (mt_control_end_lease (c, p2, &ended), ==, MT_CONTROL_CHANGED);
  g_assert_nonnull (ended);
  g_assert_cmpuint (ended->cookie, ==, p2);
  g_assert_cmpstr (ended->uuid, ==, "a");
  g_assert_cmpint (mt_control_end_lease (c, p2, NULL), ==, MT_CONTROL_SAME);
  g_assert_null (mt_control_lookup_lease (c, p2));
  mt_control_vm_policy (c, "a", &files, &p);
  assert_bounds (&p, 768 * MiB, 768 * MiB);
  g_assert_cmpint (mt_control_end_lease (c, p1, NULL), ==, MT_CONTROL_CHANGED);
  g_assert_null (mt_control_vm_pin (c, "a"));
  mt_control_vm_policy (c, "a", &files, &p);
  assert_bounds (&p, GiB, 2 * GiB);

  /* Pins end with their VM; its limits leave the table (the daemon keeps
   * them in its state file); another VM's pin stays. */
  g_assert_cmpint (mt_control_pin (c, "a", GiB, "again", ":1.1", &p1), ==, MT_CONTROL_PLAN);
  g_assert_cmpint (mt_control_vm_removed (c, "a"), ==, MT_CONTROL_CHANGED);
  g_assert_null (mt_control_lookup_lease (c, p1));
  mt_control_vm_policy (c, "a", &files, &p);
  assert_files_bounds (&p);
  g_assert_nonnull (mt_control_lookup_lease (c, p3));
  g_assert_cmpint (mt_control_vm_removed (c, "a"), ==, MT_CONTROL_SAME);
  g_assert_cmpint (mt_control_set_limits (c, "c", GiB, GiB), ==, MT_CONTROL_CHANGED);
  g_assert_cmpint (mt_control_vm_removed (c, "c"), ==, MT_CONTROL_SAME);
  g_assert_false (mt_control_get_limits (c, "c", &(guint64){ 0 }, &(guint64){ 0 }));
}

static void
test_reservations (void)
{
  g_autoptr (MtControl) c = mt_control_new ();
  g_autoptr (GPtrArray) out = NULL;
  g_autoptr (GPtrArray) list = NULL;
  MtHostPolicy files, hp;
  guint r1, r2;
  gint64 now = 1000 * SEC;

  mt_host_policy_init_defaults (&files);
  files.reserve = 512 * MiB;
  g_assert_cmpint (mt_control_reserve (c, GiB, "start vm7", ":1.5", now + 10 * SEC, &r1), ==,
                   MT_CONTROL_PLAN);
  g_assert_cmpint (mt_control_reserve (c, 256 * MiB, "slow", ":1.6", now + 2 * SEC, &r2), ==,
                   MT_CONTROL_PLAN);
  g_assert_cmpuint (mt_control_reserved (c), ==, GiB + 256 * MiB);

  /* A derived budget loses the reservations through the reserve; an
   * explicit one directly, never down to 0 ("derive"). */
  mt_control_host_policy (c, &files, &hp);
  g_assert_cmpuint (hp.reserve, ==, 512 * MiB + GiB + 256 * MiB);
  g_assert_cmpuint (hp.budget, ==, 0);
  files.budget = 4 * GiB;
  mt_control_host_policy (c, &files, &hp);
  g_assert_cmpuint (hp.budget, ==, 4 * GiB - GiB - 256 * MiB);
  files.budget = GiB;
  mt_control_host_policy (c, &files, &hp);
  g_assert_cmpuint (hp.budget, ==, 1);

  /* No budget known, or the VMs hold too much: nothing until a deadline. */
  g_assert_null (mt_control_after_plan (c, MT_UNKNOWN, 3 * GiB, now));
  g_assert_null (mt_control_after_plan (c, 2 * GiB, 3 * GiB, now + SEC));
  /* r2's deadline: it fails and ends; r1 has time left. */
  out = mt_control_after_plan (c, 2 * GiB, 3 * GiB, now + 2 * SEC);
  g_assert_nonnull (out);
  g_assert_cmpuint (out->len, ==, 1);
  g_assert_cmpuint (((MtLease *) out->pdata[0])->cookie, ==, r2);
  g_assert_false (((MtLease *) out->pdata[0])->done);
  g_assert_null (mt_control_lookup_lease (c, r2));
  g_assert_cmpuint (mt_control_reserved (c), ==, GiB);
  g_clear_pointer (&out, g_ptr_array_unref);

  /* The room is there: done, reported once, and still set aside. */
  out = mt_control_after_plan (c, 2 * GiB, 2 * GiB, now + 3 * SEC);
  g_assert_nonnull (out);
  g_assert_cmpuint (out->len, ==, 1);
  g_assert_cmpuint (((MtLease *) out->pdata[0])->cookie, ==, r1);
  g_assert_true (((MtLease *) out->pdata[0])->done);
  g_assert_true (mt_control_lookup_lease (c, r1)->done);
  g_assert_null (mt_control_after_plan (c, 2 * GiB, 2 * GiB, now + 4 * SEC));
  /* A done reservation does not fail at its deadline. */
  g_assert_null (mt_control_after_plan (c, 2 * GiB, 3 * GiB, now + 60 * SEC));
  g_assert_cmpuint (mt_control_reserved (c), ==, GiB);

  list = mt_control_list_leases (c, MT_LEASE_RESERVATION, NULL);
  g_assert_cmpuint (list->len, ==, 1);
  g_assert_cmpstr (((MtLease *) list->pdata[0])->reason, ==, "start vm7");
  g_assert_cmpstr (((MtLease *) list->pdata[0])->holder, ==, ":1.5");
  g_assert_null (((MtLease *) list->pdata[0])->uuid);

  g_assert_cmpint (mt_control_end_lease (c, r1, NULL), ==, MT_CONTROL_CHANGED);
  g_assert_cmpuint (mt_control_reserved (c), ==, 0);
  files.budget = 0;
  mt_control_host_policy (c, &files, &hp);
  g_assert_cmpuint (hp.reserve, ==, 512 * MiB);
}

/* Reservations whose sum saturates still add back up once one ends. */
static void
test_reserved_saturates (void)
{
  g_autoptr (MtControl) c = mt_control_new ();
  guint huge, small;

  mt_control_reserve (c, G_MAXUINT64 - GiB, "huge", "x", 10, &huge);
  mt_control_reserve (c, 2 * GiB, "small", "x", 10, &small);
  g_assert_cmpuint (mt_control_reserved (c), ==, G_MAXUINT64);
  mt_control_end_lease (c, huge, NULL);
  g_assert_cmpuint (mt_control_reserved (c), ==, 2 * GiB);
}

static void
test_end_holder (void)
{
  g_autoptr (MtControl) c = mt_control_new ();
  g_autoptr (GPtrArray) ended = NULL;
  MtVmPolicy files = files_vm_policy ();
  MtVmPolicy p;
  guint pa, pb, ra, rb;

  mt_control_pin (c, "vm1", GiB, "a's pin", ":1.7", &pa);
  mt_control_pin (c, "vm1", 2 * GiB, "b's pin", ":1.8", &pb);
  mt_control_reserve (c, GiB, "a's room", ":1.7", 10, &ra);
  mt_control_reserve (c, GiB, "b's room", ":1.8", 10, &rb);

  g_assert_cmpint (mt_control_end_holder (c, ":1.9", &ended), ==, MT_CONTROL_SAME);
  g_assert_null (ended);
  g_assert_cmpint (mt_control_end_holder (c, ":1.8", &ended), ==, MT_CONTROL_CHANGED);
  g_assert_nonnull (ended);
  g_assert_cmpuint (ended->len, ==, 2);
  g_assert_cmpuint (((MtLease *) ended->pdata[0])->cookie, ==, pb);
  g_assert_cmpint (((MtLease *) ended->pdata[0])->kind, ==, MT_LEASE_PIN);
  g_assert_cmpuint (((MtLease *) ended->pdata[1])->cookie, ==, rb);
  g_assert_cmpint (((MtLease *) ended->pdata[1])->kind, ==, MT_LEASE_RESERVATION);
  /* a's leases stay, and a's pin is in force again. */
  g_assert_nonnull (mt_control_lookup_lease (c, pa));
  g_assert_nonnull (mt_control_lookup_lease (c, ra));
  g_assert_cmpuint (mt_control_reserved (c), ==, GiB);
  mt_control_vm_policy (c, "vm1", &files, &p);
  assert_bounds (&p, GiB, GiB);
  g_assert_cmpint (mt_control_end_holder (c, ":1.8", NULL), ==, MT_CONTROL_SAME);
}

static void
test_lease_copy (void)
{
  g_autoptr (MtControl) c = mt_control_new ();
  g_autoptr (MtLease) copy = NULL;
  guint cookie;

  mt_control_pin (c, "vm1", GiB, "why", ":1.1", &cookie);
  copy = mt_lease_copy (mt_control_lookup_lease (c, cookie));
  mt_control_end_lease (c, cookie, NULL);
  /* The copy outlives the lease. */
  g_assert_cmpuint (copy->cookie, ==, cookie);
  g_assert_cmpstr (copy->uuid, ==, "vm1");
  g_assert_cmpstr (copy->reason, ==, "why");
  g_assert_cmpstr (copy->holder, ==, ":1.1");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/control/mode", test_mode);
  g_test_add_func ("/control/limits", test_limits);
  g_test_add_func ("/control/pins", test_pins);
  g_test_add_func ("/control/reservations", test_reservations);
  g_test_add_func ("/control/reserved-saturates", test_reserved_saturates);
  g_test_add_func ("/control/end-holder", test_end_holder);
  g_test_add_func ("/control/lease-copy", test_lease_copy);
  return g_test_run ();
}
