/*
 * capi.h - declarations for the cgo preamble of capi/*.go (no code).
 *
 * The //export prototypes that cgo generates are compiled after this file,
 * so every vws_* export is checked by the C compiler against the prototype
 * in include/verawebsockets.h: a Go signature that drifts from the ABI fails
 * the build with "conflicting types".
 */
#ifndef VWS_CAPI_H
#define VWS_CAPI_H

#include <stdlib.h>
#include "verawebsockets.h"

/* cgo drops const from Go types; a const-qualified typedef keeps it in the
 * generated prototypes (const char * parameters of the ABI). */
typedef const char vws_cchar;
typedef const struct pollfd vws_cpollfd;
typedef struct pollfd vws_pollfd;

#endif
