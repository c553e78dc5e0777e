/* domain.c: MtDomainInfo's memory. */
#include "domain.h"
#include "config.h"

void
mt_domain_info_clear (MtDomainInfo *info)
{
  g_free (info->name);
  g_free (info->uuid);
  g_free (info->vmem_alias);
  g_free (info->agent_socket);
  g_clear_pointer (&info->overrides, mt_vm_overrides_unref);
  g_free (info->overrides_error);
  g_free (info->mechanism_note);
  g_free (info->opt_in);
  *info = (MtDomainInfo){ 0 };
}

void
mt_domain_info_free (MtDomainInfo *info)
{
  if (info == NULL)
    return;
  mt_domain_info_clear (info);
  g_free (info);
}
