/* model_int.h — internals shared by model.c and model_json.c. */
#ifndef MOEREC_MOE_MODEL_INT_H
#define MOEREC_MOE_MODEL_INT_H

#include "moe/model.h"

/* Parse model.json text into m (zeroed by the caller) and arch; no weights. */
int moe_model_parse_json(moe_model *m, moe_arch *arch, const char *text, mr_err *e);
/* (Re)build m->field_slot from m->cat and m->num (after the schema is set). */
void moe_model_index_fields(moe_model *m);

#endif
