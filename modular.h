/* modular.h - see below */
#ifndef MODULAR_H
#define MODULAR_H
#endif
