/* config-metadata.h: a VM policy from the domain's libvirt <metadata>.
 *
 * The element lives in namespace MT_METADATA_NAMESPACE and holds one
 * child per VM policy key, with the same value syntax as the files:
 *
 *   <memtide:policy xmlns:memtide="https://memtide.org/xmlns/policy/1">
 *     <memtide:min>512M</memtide:min>
 *     <memtide:max>75%</memtide:max>
 *   </memtide:policy>
 *
 * virDomainGetMetadata (VIR_DOMAIN_METADATA_ELEMENT) strips the prefix
 * and the namespace declaration ("<policy><min>512M</min></policy>"), so
 * elements without a namespace count as ours; elements in any other
 * namespace are skipped, so other tools may annotate the policy.
 */
#pragma once

#include <glib.h>

/* Largest metadata accepted; a real policy is a few hundred bytes. */
#define MT_METADATA_MAX_LENGTH (64 * 1024)

/* MtSetting array (indices into mt_vm_keys, line 0), empty when xml is
 * NULL or blank.  NULL with an MT_CONFIG_ERROR naming domain_name, the
 * element and what was expected when anything in our namespace is wrong:
 * a policy is applied whole or not at all. */
GArray *mt_metadata_parse (const char *domain_name, const char *xml, GError **error);
